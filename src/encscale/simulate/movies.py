"""A simulated CNeuroMod movie dataset in the Algonauts 2025 layout
(:mod:`encscale.data.cneuromod`).

Movies: procedurally generated runs cut into shots, as films are: each shot has its own
background colour and its own coloured discs and squares moving and bouncing off the edges;
shots last ``shot_s`` seconds on average. Written as real ``.mkv`` files (PyAV, lossless
FFV1, so the frames read back are the frames the fMRI was simulated from).
fMRI: per subject and parcel, a time series sampled every TR: for a driven parcel, a fixed
random mixture of the movie's *stimulus features* (per frame: mean colour of a coarse grid,
and motion energy, the mean absolute frame difference, of the same grid), averaged over each
TR and convolved with the canonical haemodynamic response, plus Gaussian noise at the
parcel's SNR; an undriven parcel is noise alone. Every number follows from ``seed``.

The planted truth (per subject: ``driven`` (P,) bool, ``snr`` (P,), ``weights``
(P × n_features), and per run the noiseless ``signal/<key>`` (TRs × P)) goes to
``truth/sub-NN.h5`` beside the dataset; it is not part of the release.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from encscale.data import cneuromod
from encscale.io import PathLike, create_h5
from encscale.seeds import named_seed
from encscale.simulate.truth import truth_path
from encscale.video import decode

PARAM_KEYS = (
    "seed",
    "n_subjects",
    "runs",
    "run_s",
    "fps",
    "frame_size",
    "n_parcels",
    "driven_fraction",
    "snr_range",
    "grid",
    "n_objects",
    "shot_s",
)


def check_params(params: dict) -> dict:
    """Validate the simulator's params; a ValueError names the offending key."""
    missing, unknown = set(PARAM_KEYS) - set(params), set(params) - set(PARAM_KEYS)
    if missing or unknown:
        raise ValueError(
            f"movie simulator params: missing {sorted(missing)}, unknown {sorted(unknown)}"
        )
    p = dict(params)
    checks = [
        ("n_subjects", 1 <= p["n_subjects"] <= len(cneuromod.SUBJECTS)),
        (
            "runs",
            len(p["runs"]) >= 1 and all(cneuromod.FRIENDS_RUN.fullmatch(r) for r in p["runs"]),
        ),
        ("run_s", p["run_s"] >= 4 * cneuromod.TR),
        ("fps", p["fps"] > 0),
        ("frame_size", p["frame_size"] >= 16 and p["frame_size"] % 2 == 0),
        ("n_parcels", p["n_parcels"] >= 2),
        ("driven_fraction", 0 < p["driven_fraction"] < 1),
        ("snr_range", 0 < p["snr_range"][0] <= p["snr_range"][1]),
        ("grid", 1 <= p["grid"] <= p["frame_size"] and p["frame_size"] % p["grid"] == 0),
        ("n_objects", p["n_objects"] >= 1),
        ("shot_s", p["shot_s"] * p["fps"] >= 2),
    ]
    for key, ok in checks:
        if not ok:
            raise ValueError(f"movie simulator params: invalid '{key}': {p[key]!r}")
    return p


def shot_starts(rng: np.random.Generator, n_frames: int, shot_frames: float) -> np.ndarray:
    """First frame of each shot: lengths uniform in [0.5, 1.5] × ``shot_frames`` (≥ 1)."""
    lengths = np.maximum(1, np.round(rng.uniform(0.5, 1.5, n_frames) * shot_frames)).astype(int)
    starts = np.concatenate([[0], np.cumsum(lengths)])
    return starts[starts < n_frames]


def render_movie(
    rng: np.random.Generator, n_frames: int, size: int, n_objects: int, shot_frames: float
) -> np.ndarray:
    """(n_frames, size, size, 3) uint8: shots of about ``shot_frames`` frames; in each, 1 to
    ``n_objects`` discs and squares move at constant speed and bounce off the edges over a
    plain background; the background and the objects are drawn anew at every cut."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    frames = np.empty((n_frames, size, size, 3), dtype=np.uint8)
    cuts = set(shot_starts(rng, n_frames, shot_frames).tolist())
    for t in range(n_frames):
        if t in cuts:
            n = rng.integers(1, n_objects + 1)
            background = rng.uniform(0, 255, 3).astype(np.float32)
            pos = rng.uniform(0.2 * size, 0.8 * size, (n, 2))
            vel = rng.uniform(-0.06 * size, 0.06 * size, (n, 2))  # pixels per frame
            radius = rng.uniform(0.08 * size, 0.2 * size, n)
            colour = rng.uniform(0, 255, (n, 3))
            square = rng.random(n) < 0.5
        canvas = np.broadcast_to(background, (size, size, 3))
        for k in range(n):
            dy, dx = yy - pos[k, 0], xx - pos[k, 1]
            inside = (
                np.maximum(abs(dy), abs(dx)) < radius[k]
                if square[k]
                else dy**2 + dx**2 < radius[k] ** 2
            )
            canvas = np.where(inside[..., None], colour[k], canvas)
        frames[t] = canvas.astype(np.uint8)
        pos += vel
        for axis in (0, 1):  # bounce
            out = (pos[:, axis] < radius) | (pos[:, axis] > size - radius)
            vel[out, axis] *= -1
            pos[:, axis] = np.clip(pos[:, axis], radius, size - radius)
    return frames


def stimulus_features(frames: np.ndarray, grid: int) -> np.ndarray:
    """Per frame, the mean colour of each cell of a grid × grid partition and its motion
    energy (mean absolute difference from the previous frame; 0 for the first), in [0, 1]:
    (n_frames, 4·grid²) float32."""
    n, size = frames.shape[:2]
    cells = frames.reshape(n, grid, size // grid, grid, size // grid, 3).astype(np.float32) / 255
    colour = cells.mean(axis=(2, 4)).reshape(n, -1)
    diff = np.abs(np.diff(frames.astype(np.float32) / 255, axis=0, prepend=frames[:1] / 255))
    motion = diff.reshape(n, grid, size // grid, grid, size // grid, 3).mean(axis=(2, 4, 5))
    return np.concatenate([colour, motion.reshape(n, -1)], axis=1)


def per_tr(features: np.ndarray, fps: float, n_trs: int) -> np.ndarray:
    """Mean of the frame features of each TR [t·TR, (t+1)·TR): (n_trs, n_features)."""
    frame_tr = np.floor(np.arange(len(features)) / fps / cneuromod.TR).astype(int)
    out = np.zeros((n_trs, features.shape[1]), dtype=np.float64)
    for t in range(n_trs):
        rows = frame_tr == t
        if rows.any():
            out[t] = features[rows].mean(axis=0)
    return out


def simulate_movies(root: PathLike, params: dict) -> None:
    """Write the simulated dataset under ``root`` (layout in the module docstring)."""
    p = check_params(params)
    root = Path(root)
    n_frames = int(round(p["run_s"] * p["fps"]))
    n_trs = int(p["run_s"] // cneuromod.TR)
    features = {}
    for run in p["runs"]:
        frames = render_movie(
            np.random.default_rng(named_seed(p["seed"], "movie", run)),
            n_frames,
            p["frame_size"],
            p["n_objects"],
            p["shot_s"] * p["fps"],
        )
        # lossless FFV1: libx264's output for such small frames differs from run to run
        path = cneuromod.movie_path(root, f"friends_{run}")
        decode.write_video(path, frames, p["fps"], codec="ffv1")
        tr_features = per_tr(stimulus_features(frames, p["grid"]), p["fps"], n_trs)
        features[run] = tr_features - tr_features.mean(axis=0)
    n_features = next(iter(features.values())).shape[1]
    for subject in cneuromod.SUBJECTS[: p["n_subjects"]]:
        rng = np.random.default_rng(named_seed(p["seed"], "subject", subject))
        driven = rng.random(p["n_parcels"]) < p["driven_fraction"]
        driven[0], driven[-1] = True, False  # at least one of each
        weights = rng.normal(0, 1, (p["n_parcels"], n_features)) * driven[:, None]
        snr = np.exp(rng.uniform(*np.log(p["snr_range"]), p["n_parcels"]))
        signals = {
            run: decode.convolve_hrf(f @ weights.T, cneuromod.TR) for run, f in features.items()
        }
        scale = np.std(np.concatenate(list(signals.values())), axis=0)
        scale[~driven] = 1.0
        bold = {}
        for session, (run, signal) in enumerate(signals.items(), start=1):
            signal = signal / scale
            noise = rng.normal(0, 1, signal.shape) / np.where(driven, snr, 1.0)
            bold[f"ses-{session:03d}_task-{run}"] = (signal * driven + noise).astype(np.float32)
            signals[run] = signal * driven
        path = cneuromod.fmri_path(root, subject, "friends")
        with create_h5(path) as h5:
            for key, data in bold.items():
                h5[key] = data
        with create_h5(truth_path(root, subject)) as h5:
            h5["driven"] = driven
            h5["snr"] = snr.astype(np.float32)
            h5["weights"] = weights.astype(np.float32)
            for key, run in zip(bold, signals, strict=True):
                h5[f"signal/{key}"] = signals[run].astype(np.float32)
