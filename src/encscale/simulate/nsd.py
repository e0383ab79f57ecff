"""A seeded simulator of a miniature Natural Scenes Dataset, written in NSD's own layout.

The demo study runs on it, so that the preparation code that reads the real NSD reads the
demo too. What it writes under ``root``:

- procedural images (gratings, blobs, shapes, colour fields) in ``imgBrick``;
- NSD's design file: every subject sees the shared images (the test split) and its own
  unique images, each ``n_repeats`` times in a shuffled order;
- per subject an ellipsoid brain with NSD's ROI volumes and label tables: ``nsdgeneral``
  (visual cortex), ``streams``, ``prf-visualrois`` and four ``floc-*`` atlases;
- per subject single-trial betas, session by session (int16, percent signal change × 300,
  with a per-session offset and scale drift) and NSD's ncsnr estimated from them;
- the planted truth in ``truth/<subject>.h5`` for tests.

The response model: a hidden convolutional network with seeded random weights, given as a
model-registry entry (``hidden_model``: a timm architecture, e.g. a ConvNeXt with 4
stages; :func:`hidden_feature_maps`). Each stream ROI reads the output map of one stage
(its depth, :data:`DEPTH_OF_STREAM`) through per-voxel Gaussian receptive fields on a
smooth retinotopic map and a few non-negatively weighted channels (:func:`voxel_model`,
:func:`voxel_signal`). The demo's model zoo holds this network among others, so the
pipeline can be checked to recover which depth drives each voxel: two networks with
different random weights do not correspond layer by layer, so only the network itself
carries the planted depth. The signal is standardised over the subject's images; a trial's
beta is signal + noise / s with s the voxel's true ncsnr (:func:`trial_betas`).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io
from scipy.ndimage import gaussian_filter

from encscale import io
from encscale.data import nsd
from encscale.io import atomic_path, create_h5
from encscale.simulate.truth import truth_path

log = logging.getLogger(__name__)

PARAM_KEYS = (
    "seed",
    "n_subjects",
    "n_shared",
    "n_unique",
    "n_repeats",
    "trials_per_session",
    "image_size",
    "volume_shape",
    "snr_range",
    "hidden_model",
)
VOXEL_MM = 1.8
RF_SD = {1: 0.05, 2: 0.09, 3: 0.15, 4: 0.25}  # receptive-field sd per depth, image fraction
CHANNELS_READ = 3  # channels each voxel reads
DRIFT_OFFSET_SD = 1.0  # per-session offset sd, percent signal change
DRIFT_LOG_SCALE_SD = 0.2  # per-session log scale sd
STREAMS = {
    1: "early",
    2: "midventral",
    3: "midlateral",
    4: "midparietal",
    5: "ventral",
    6: "lateral",
    7: "parietal",
}
DEPTH_OF_STREAM = {
    "early": 1,
    "midventral": 2,
    "midlateral": 2,
    "midparietal": 2,
    "ventral": 3,
    "lateral": 3,
    "parietal": 4,
}
ATLAS_LABELS = {
    "nsdgeneral": {1: "nsdgeneral"},
    "streams": STREAMS,
    "prf-visualrois": {1: "V1v", 2: "V1d", 3: "V2v", 4: "V2d", 5: "V3v", 6: "V3d", 7: "hV4"},
    "floc-faces": {1: "OFA", 2: "FFA-1", 3: "FFA-2"},
    "floc-bodies": {1: "EBA", 2: "FBA-1", 3: "FBA-2"},
    "floc-places": {1: "OPA", 2: "PPA", 3: "RSC"},
    "floc-words": {1: "OWFA", 2: "VWFA-1", 3: "VWFA-2"},
}
# independent random streams, one per part of the simulation
_IMAGES, _DESIGN, _SUBJECT = range(3)


def simulate_nsd(
    root: str | os.PathLike, params: dict, provenance: Mapping[str, Any] | None = None
) -> None:
    """Write a simulated NSD under ``root`` (layout in the module docstring).

    ``params``: seed, n_subjects, n_shared, n_unique, n_repeats, trials_per_session,
    image_size, volume_shape, snr_range, hidden_model (a model-registry entry), and
    optionally beta_version. The same params give the same arrays. ``provenance``
    (:func:`encscale.provenance.job_provenance`) is recorded in the HDF5 files.
    """
    p = check_params(params)
    root = Path(root)
    n_images = p["n_shared"] + p["n_subjects"] * p["n_unique"]
    images = make_images(_rng(p["seed"], _IMAGES), n_images, p["image_size"])
    _write_stimuli(nsd.stimuli_path(root), images, provenance)
    design = make_design(
        _rng(p["seed"], _DESIGN), p["n_subjects"], p["n_shared"], p["n_unique"], p["n_repeats"]
    )
    _write_design(nsd.expdesign_path(root), design)
    log.info("wrote %d images and the design", n_images)

    maps = hidden_feature_maps(images, p["hidden_model"])
    del images
    shape = tuple(p["volume_shape"])
    atlases = brain_atlases(shape)
    affine = volume_affine(shape)
    for index in range(p["n_subjects"]):
        subject = nsd.subject_name(index)
        _write_anatomy(root, subject, atlases, affine)
        _simulate_subject(root, subject, p, design, maps, atlases, affine, provenance)


def check_params(params: dict) -> dict:
    """Validate simulator params → a copy with ``beta_version`` defaulted."""
    unknown = sorted(set(params) - set(PARAM_KEYS) - {"beta_version"})
    missing = [key for key in PARAM_KEYS if key not in params]
    if unknown or missing:
        raise ValueError(f"simulator params: unknown keys {unknown}, missing keys {missing}")
    p = {"beta_version": nsd.BETA_VERSION, **params}
    lo, hi = p["snr_range"]
    problems = [
        (p["n_subjects"] < 1, "n_subjects must be >= 1"),
        (p["n_shared"] < 1 or p["n_unique"] < 0, "n_shared must be >= 1, n_unique >= 0"),
        (p["n_repeats"] < 2, "n_repeats must be >= 2 (ncsnr needs repeats)"),
        (p["trials_per_session"] < 1, "trials_per_session must be >= 1"),
        (p["image_size"] < 16 or p["image_size"] % 16, "image_size must be a multiple of 16"),
        (len(p["volume_shape"]) != 3 or min(p["volume_shape"]) < 8, "volume_shape: 3 sizes >= 8"),
        (not 0 < lo <= hi, "snr_range must be [lo, hi] with 0 < lo <= hi"),
    ]
    for bad, message in problems:
        if bad:
            raise ValueError(f"simulator params: {message}")
    return p


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([seed, *keys])


# --- images and design ------------------------------------------------------------------


def make_images(rng: np.random.Generator, n_images: int, size: int) -> np.ndarray:
    """Procedural images: a background and 1–4 elements. → (n_images, size, size, 3) uint8."""
    y, x = (np.mgrid[0:size, 0:size] + 0.5) / size
    out = np.empty((n_images, size, size, 3), dtype=np.uint8)
    for i in range(n_images):
        img = _background(rng, x, y)
        for _ in range(rng.integers(1, 5)):
            alpha, rgb = _element(rng, x, y)
            img = img * (1 - alpha[..., None]) + alpha[..., None] * rgb
        out[i] = np.clip(np.rint(img * 255), 0, 255)
    return out


def _background(rng: np.random.Generator, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """A uniform colour or a linear gradient between two colours. → (H, W, 3) in [0, 1]."""
    c0, c1 = rng.uniform(0, 1, (2, 3))
    if rng.random() < 0.5:
        c1 = c0
    a = rng.uniform(0, 2 * np.pi)
    t = np.clip(0.5 + (x - 0.5) * np.cos(a) + (y - 0.5) * np.sin(a), 0, 1)
    return c0 + t[..., None] * (c1 - c0)


def _element(
    rng: np.random.Generator, x: np.ndarray, y: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """One element: (alpha (H, W) in [0, 1], colour (3,) or texture (H, W, 3))."""
    kind = rng.integers(6)
    colour = rng.uniform(0, 1, 3)
    cx, cy = rng.uniform(0.1, 0.9, 2)
    r = rng.uniform(0.08, 0.35)
    a = rng.uniform(0, np.pi)
    dx, dy = x - cx, y - cy
    if kind == 0:  # grating in a Gaussian aperture
        freq, phase = rng.uniform(2, 12), rng.uniform(0, 2 * np.pi)
        wave = 0.5 + 0.5 * np.sin(2 * np.pi * freq * (x * np.cos(a) + y * np.sin(a)) + phase)
        other = rng.uniform(0, 1, 3)
        alpha = np.exp(-(dx**2 + dy**2) / (2 * (1.5 * r) ** 2))
        return alpha, other + wave[..., None] * (colour - other)
    if kind == 1:  # Gaussian blob
        return np.exp(-(dx**2 + dy**2) / (2 * (r / 2) ** 2)), colour
    if kind == 2:  # disc
        return (dx**2 + dy**2 <= r**2).astype(float), colour
    if kind == 3:  # rotated rectangle
        half_w, half_h = r * rng.uniform(0.3, 1.0, 2)
        along, across = dx * np.cos(a) + dy * np.sin(a), -dx * np.sin(a) + dy * np.cos(a)
        return ((np.abs(along) <= half_w) & (np.abs(across) <= half_h)).astype(float), colour
    if kind == 4:  # triangle: vertices counter-clockwise on a circle
        angles = np.sort(rng.uniform(0, 2 * np.pi, 3))
        vx, vy = cx + r * np.cos(angles), cy + r * np.sin(angles)
        inside = np.ones_like(x, dtype=bool)
        for k in range(3):
            ex, ey = vx[(k + 1) % 3] - vx[k], vy[(k + 1) % 3] - vy[k]
            inside &= ex * (y - vy[k]) - ey * (x - vx[k]) >= 0
        return inside.astype(float), colour
    # colour field: a half-plane, partly transparent
    return (dx * np.cos(2 * a) + dy * np.sin(2 * a) > 0) * rng.uniform(0.5, 1.0), colour


def make_design(
    rng: np.random.Generator, n_subjects: int, n_shared: int, n_unique: int, n_repeats: int
) -> dict[str, np.ndarray]:
    """NSD-style design, 1-based: masterordering (T,), subjectim (S, n_shared+n_unique), sharedix.

    Image ids are drawn at random from 0..N-1: the shared ones, then a block of unique ones
    per subject; a ``subjectim`` row lists the shared ids first, then the subject's own.
    Every row position appears ``n_repeats`` times in the shuffled ``masterordering``.
    """
    perm = rng.permutation(n_shared + n_subjects * n_unique)
    shared = np.sort(perm[:n_shared])
    rows = [
        np.concatenate(
            [shared, np.sort(perm[n_shared + s * n_unique : n_shared + (s + 1) * n_unique])]
        )
        for s in range(n_subjects)
    ]
    order = rng.permutation(np.repeat(np.arange(n_shared + n_unique), n_repeats))
    return {
        "masterordering": order + 1,
        "subjectim": np.stack(rows) + 1,
        "sharedix": shared + 1,
    }


# --- anatomy ------------------------------------------------------------------------------


def volume_affine(shape: tuple[int, int, int]) -> np.ndarray:
    """1.8 mm isotropic voxels, volume centred on the origin. → (4, 4)."""
    affine = np.diag([VOXEL_MM, VOXEL_MM, VOXEL_MM, 1.0])
    affine[:3, 3] = -VOXEL_MM * (np.asarray(shape) - 1) / 2
    return affine


def _brain_coordinates(shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Normalised coordinates u (left→right), v (posterior→anterior), w (inferior→superior).

    The brain is the ellipsoid u² + v² + w² ≤ 1.
    """
    grid = np.indices(shape, dtype=np.float64)
    centre = (np.asarray(shape) - 1) / 2
    radius = 0.46 * np.asarray(shape)
    u, v, w = ((g - c) / r for g, c, r in zip(grid, centre, radius, strict=True))
    return u, v, w


def brain_atlases(shape: tuple[int, int, int]) -> dict[str, np.ndarray]:
    """Brain mask (uint8 0/1) and label volumes (int16: -1 outside the brain, 0 unlabelled).

    ``nsdgeneral`` is the posterior part of the brain without its deep medial core; the
    streams tile it: early at the posterior pole, then a band of mid-level streams
    (ventral / lateral / dorsal by height), then the high-level streams further forward.
    The other atlases nest inside the streams. Keys: ``brainmask`` and :data:`ATLAS_LABELS`.
    """
    u, v, w = _brain_coordinates(shape)
    brain = u**2 + v**2 + w**2 <= 1
    au = np.abs(u)
    low, high = w < -0.25, w > 0.35
    middle = ~low & ~high
    pole, mid, far = v < -0.6, (v >= -0.6) & (v < -0.3), (v >= -0.3) & (v < 0.05)
    general = brain & (v < 0.05) & ~(far & middle & (au < 0.35))
    streams = [
        general & pole,
        general & mid & low,
        general & mid & middle,
        general & mid & high,
        general & far & low,
        general & far & middle,
        general & far & high,
    ]
    early, midventral, _, _, ventral, lateral, parietal = streams
    ventral_half = w < 0
    # V1, V2, V3: thirds of early by distance from the occipital pole
    pole_distance = np.sqrt(u**2 + (v + 1) ** 2 + w**2)
    v1_edge, v2_edge = np.quantile(pole_distance[early], [1 / 3, 2 / 3])
    v1, v2 = early & (pole_distance <= v1_edge), early & (pole_distance <= v2_edge)
    front, back = v >= -0.15, v < -0.15
    regions = {
        "nsdgeneral": [general],
        "streams": streams,
        "prf-visualrois": [
            v1 & ventral_half,
            v1 & ~ventral_half,
            v2 & ventral_half,
            v2 & ~ventral_half,
            early & ventral_half,
            early & ~ventral_half,
            midventral & (v < -0.45),
        ],
        "floc-faces": [
            lateral & back & (au > 0.5),
            ventral & back & (au > 0.35),
            ventral & front & (au > 0.35),
        ],
        "floc-bodies": [
            lateral & (v < -0.1) & (au > 0.45),
            ventral & back & (au > 0.55),
            ventral & front & (au > 0.55),
        ],
        "floc-places": [
            (lateral | parietal) & (w > 0.2) & (w < 0.5) & back,
            ventral & (au < 0.35),
            parietal & front & (au < 0.3),
        ],
        "floc-words": [
            lateral & (w < 0) & back,
            ventral & back & (au > 0.2) & (au < 0.5),
            ventral & front & (au > 0.2) & (au < 0.5),
        ],
    }
    volumes = {"brainmask": brain.astype(np.uint8)}
    for atlas, parts in regions.items():
        labels = np.select(parts, list(range(1, len(parts) + 1)), 0).astype(np.int16)
        labels[~brain] = -1
        volumes[atlas] = labels
    return volumes


def _write_anatomy(root: Path, subject: str, atlases: dict, affine: np.ndarray) -> None:
    io.write_nifti(nsd.brainmask_path(root, subject), atlases["brainmask"], affine)
    for atlas, labels in ATLAS_LABELS.items():
        io.write_nifti(nsd.roi_path(root, subject, atlas), atlases[atlas], affine)
        lines = ["0 Unknown", *(f"{label} {name}" for label, name in labels.items())]
        with atomic_path(nsd.ctab_path(root, subject, atlas)) as tmp:
            tmp.write_text("\n".join(lines) + "\n")


# --- response model -------------------------------------------------------------------------


def hidden_feature_maps(images: np.ndarray, spec: dict, batch: int = 128) -> list[np.ndarray]:
    """Stage output maps of the hidden network for all images → [(N, C_d, H_d, W_d) float32].

    ``spec`` is a model-registry entry (see :mod:`encscale.vision.registry`); images are fed exactly
    as the feature extractor feeds them, and the network must have one map per depth of
    :data:`DEPTH_OF_STREAM`.
    """
    import torch

    from encscale.vision.layers import block_maps, preprocess
    from encscale.vision.registry import build_model, input_spec

    model = build_model(spec)
    ispec = input_spec(model, spec)
    chunks: list[list[np.ndarray]] = []
    with torch.inference_mode():
        for lo in range(0, len(images), batch):
            maps = block_maps(model, preprocess(images[lo : lo + batch], ispec, "cpu"))
            chunks.append([m.float().numpy() for m in maps])
    n_depths = max(DEPTH_OF_STREAM.values())
    if len(chunks[0]) != n_depths:
        raise ValueError(
            f"simulator params: hidden_model '{spec.get('timm')}' has {len(chunks[0])} stages; "
            f"the stream ROIs need {n_depths}"
        )
    return [np.concatenate(per_depth) for per_depth in zip(*chunks, strict=True)]


def voxel_model(
    rng: np.random.Generator,
    atlases: dict[str, np.ndarray],
    snr_range: tuple[float, float],
    channels_per_depth: tuple[int, ...],
) -> dict[str, np.ndarray]:
    """Per-voxel parameters over the brain voxels (C-order of the brain mask).

    Returns ``depth`` (Vb,) 0 for voxels outside nsdgeneral (pure noise), ``center``
    (Vb, 2) receptive-field centre (x = column, y = row, fractions of the image from the
    top-left), ``size`` (Vb,) Gaussian sd in image fraction, ``channels`` and ``weights``
    (Vb, CHANNELS_READ), ``snr`` (Vb,) true ncsnr (0 for pure noise), ``amplitude`` (Vb,)
    percent signal change per unit of signal.
    """
    brain = atlases["brainmask"] > 0
    u, v, w = (c[brain] for c in _brain_coordinates(brain.shape))
    streams = atlases["streams"][brain]
    depth = np.zeros(streams.shape, dtype=np.int8)
    for label, name in STREAMS.items():
        depth[streams == label] = DEPTH_OF_STREAM[name]
    driven = depth > 0
    n = depth.size
    # retinotopy: contralateral hemifield, ventral → upper field, eccentricity grows forward
    ecc = 0.25 + 0.75 * np.clip((v + 1) / 1.05, 0, 1)
    jitter = gaussian_filter(rng.standard_normal((2, *brain.shape)), sigma=(0, 1.5, 1.5, 1.5))
    jitter = 0.05 * jitter / jitter.std()
    center = np.stack(
        [
            0.5 - 0.42 * np.tanh(2.5 * u) * ecc + jitter[0][brain],
            0.5 + 0.42 * np.tanh(2.5 * w) * ecc + jitter[1][brain],
        ],
        axis=1,
    )
    center = np.clip(center, 0.03, 0.97)
    size = np.array([RF_SD.get(int(d), 0.0) for d in depth]) * (0.7 + 0.6 * ecc)
    size *= np.exp(0.15 * rng.standard_normal(n))
    channels = np.stack(
        [rng.choice(channels_per_depth[max(d, 1) - 1], CHANNELS_READ, replace=False) for d in depth]
    )
    weights = rng.uniform(0.2, 1.0, (n, CHANNELS_READ))
    lo, hi = snr_range
    snr = np.exp(rng.uniform(np.log(lo), np.log(hi), n))
    amplitude = np.exp(0.3 * rng.standard_normal(n))
    return {
        "depth": depth,
        "center": np.where(driven[:, None], center, 0.0),
        "size": np.where(driven, size, 0.0),
        "channels": channels,
        "weights": weights,
        "snr": np.where(driven, snr, 0.0),
        "amplitude": amplitude,
    }


def voxel_signal(
    maps: list[np.ndarray], image_ids: np.ndarray, model: dict[str, np.ndarray]
) -> np.ndarray:
    """Noiseless signal of the driven voxels (depth > 0) for the given 0-based image ids.

    Each voxel sums its channels of its depth's map, weighted, over a Gaussian receptive
    field; then each voxel is standardised over ``image_ids``. → (n_images, V_driven) float32.
    """
    driven = np.flatnonzero(model["depth"] > 0)
    signal = np.zeros((len(image_ids), driven.size), dtype=np.float32)
    for d, fmap in enumerate(maps, start=1):
        cols = np.flatnonzero(model["depth"][driven] == d)
        if cols.size == 0:
            continue
        vox = driven[cols]
        _, n_channels, h, w = fmap.shape
        gy = _gaussian_profile(h, model["center"][vox, 1], model["size"][vox])
        gx = _gaussian_profile(w, model["center"][vox, 0], model["size"][vox])
        field = (gy[:, :, None] * gx[:, None, :]).reshape(vox.size, h * w)
        field = (field / field.sum(axis=1, keepdims=True)).astype(np.float32)
        features = fmap[image_ids].reshape(len(image_ids), n_channels, h * w)
        for channel in range(n_channels):
            readers, slot = np.nonzero(model["channels"][vox] == channel)
            weight = model["weights"][vox[readers], slot].astype(np.float32)
            signal[:, cols[readers]] += features[:, channel] @ field[readers].T * weight
    signal -= signal.mean(axis=0)
    std = signal.std(axis=0)
    if np.any(std == 0):
        raise RuntimeError("simulator: a driven voxel has a constant signal over the images")
    return signal / std


def _gaussian_profile(n: int, center: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """Gaussian over the n cell centres of [0, 1] for each voxel. (V,), (V,) → (V, n)."""
    cells = (np.arange(n) + 0.5) / n
    return np.exp(-((cells - center[:, None]) ** 2) / (2 * sd[:, None] ** 2))


def trial_betas(
    rng: np.random.Generator,
    signal: np.ndarray,
    trial_rows: np.ndarray,
    model: dict[str, np.ndarray],
    session_sizes: list[int],
) -> np.ndarray:
    """Single-trial betas of the brain voxels as NSD stores them. → (T, Vb) int16.

    ``signal`` (n_images, V_driven) is indexed by ``trial_rows`` (T,). Percent signal
    change = amplitude · (signal + noise / snr) for driven voxels, amplitude · noise for
    the rest (unit Gaussian noise); then each session's voxel-wise drift
    (scale · beta + offset); then × 300, rounded, clipped to int16.
    """
    driven = model["depth"] > 0
    n_trials, n_voxels = trial_rows.size, driven.size
    betas = rng.standard_normal((n_trials, n_voxels), dtype=np.float32)
    betas[:, driven] /= model["snr"][driven].astype(np.float32)
    betas[:, driven] += signal[trial_rows]
    betas *= model["amplitude"].astype(np.float32)
    start = 0
    for size in session_sizes:
        scale = np.exp(DRIFT_LOG_SCALE_SD * rng.standard_normal(n_voxels)).astype(np.float32)
        offset = (DRIFT_OFFSET_SD * rng.standard_normal(n_voxels)).astype(np.float32)
        betas[start : start + size] = betas[start : start + size] * scale + offset
        start += size
    info = np.iinfo(np.int16)
    return np.clip(np.rint(betas * nsd.PSC_SCALE), info.min, info.max).astype(np.int16)


def session_sizes(n_trials: int, trials_per_session: int) -> list[int]:
    """Trials per session: full sessions, the last one possibly shorter."""
    full, rest = divmod(n_trials, trials_per_session)
    return [trials_per_session] * full + ([rest] if rest else [])


def _simulate_subject(
    root: Path,
    subject: str,
    p: dict,
    design: dict[str, np.ndarray],
    maps: list[np.ndarray],
    atlases: dict[str, np.ndarray],
    affine: np.ndarray,
    provenance: Mapping[str, Any] | None,
) -> None:
    """Betas, ncsnr and truth of one subject."""
    rng = _rng(p["seed"], _SUBJECT, nsd.subject_index(subject))
    brain = atlases["brainmask"] > 0
    model = voxel_model(rng, atlases, p["snr_range"], tuple(m.shape[1] for m in maps))
    image_ids = nsd.subject_image_ids(design, subject)
    signal = voxel_signal(maps, image_ids, model)
    trial_rows = design["masterordering"] - 1
    sizes = session_sizes(trial_rows.size, p["trials_per_session"])
    betas = trial_betas(rng, signal, trial_rows, model, sizes)

    zscored, start = [], 0
    for session, size in enumerate(sizes, start=1):
        block = betas[start : start + size]
        volume = np.zeros((*brain.shape, size), dtype=np.int16)
        volume[brain] = block.T
        io.write_nifti(nsd.betas_path(root, subject, session, p["beta_version"]), volume, affine)
        zscored.append(nsd.zscore_trials(block / nsd.PSC_SCALE))
        start += size
    ncsnr = nsd.estimate_ncsnr(np.concatenate(zscored), image_ids[trial_rows], p["n_repeats"])
    # NSD's ncsnr volume is NaN outside the brain, its betas 0 there
    ncsnr_volume = _to_volume(ncsnr, brain, fill=np.nan)
    io.write_nifti(nsd.ncsnr_path(root, subject, p["beta_version"]), ncsnr_volume, affine)
    _write_truth(
        truth_path(root, subject), model, signal, image_ids, brain, p["n_repeats"], provenance
    )
    log.info("%s: %d sessions, %d brain voxels", subject, len(sizes), int(brain.sum()))


def _to_volume(values: np.ndarray, mask: np.ndarray, fill: float = 0.0) -> np.ndarray:
    """Scatter (V, ...) values into a volume of ``mask``'s shape filled with ``fill`` (float32)."""
    volume = np.full((*mask.shape, *values.shape[1:]), fill, dtype=np.float32)
    volume[mask] = values
    return volume


# --- writers ----------------------------------------------------------------------------


def _write_stimuli(
    path: str, images: np.ndarray, provenance: Mapping[str, Any] | None = None
) -> None:
    with create_h5(path, provenance) as h5:
        h5.create_dataset("imgBrick", data=images, chunks=(1, *images.shape[1:]))


def _write_design(path: str, design: dict[str, np.ndarray]) -> None:
    """NSD's design as MATLAB doubles, 1-based, vectors as 1 × n rows."""
    arrays = {key: np.atleast_2d(value).astype(np.float64) for key, value in design.items()}
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        scipy.io.savemat(f, arrays)


def _write_truth(
    path: str,
    model: dict[str, np.ndarray],
    signal: np.ndarray,
    image_ids: np.ndarray,
    brain: np.ndarray,
    n_repeats: int,
    provenance: Mapping[str, Any] | None = None,
) -> None:
    """Planted truth: volumes of depth, true ncsnr and ceiling, receptive fields; signal."""
    s2 = model["snr"].astype(np.float64) ** 2
    ceiling = np.sqrt(s2 / (s2 + 1.0 / n_repeats))
    driven = model["depth"] > 0
    with create_h5(path, provenance) as h5:
        depth = np.zeros(brain.shape, dtype=np.int8)
        depth[brain] = model["depth"]
        h5["depth"] = depth
        h5["ncsnr_true"] = _to_volume(model["snr"], brain)
        h5["noise_ceiling_r"] = _to_volume(ceiling, brain)
        h5["rf_center"] = _to_volume(model["center"], brain)
        h5["rf_size"] = _to_volume(model["size"], brain)
        h5["signal"] = signal
        h5["signal_image_ids"] = image_ids.astype(np.int64)
        h5["signal_voxel_ijk"] = np.argwhere(brain)[driven].astype(np.int32)
        h5.attrs["depth_of_roi"] = json.dumps(DEPTH_OF_STREAM)
        h5.attrs["n_depths"] = max(DEPTH_OF_STREAM.values())
        h5.attrs["n_repeats"] = n_repeats
        h5.attrs["rf_center_axes"] = "x (column), y (row): fractions of the image from top-left"
