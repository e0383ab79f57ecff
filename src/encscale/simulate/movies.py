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

Receptive fields (``receptive_field``, optional): ``frame`` (the default) mixes every grid
cell's features, so much of a parcel's signal follows the frame's overall colour (a shot's
background fills most cells); ``cell`` keeps each driven parcel's weights on one grid cell
(drawn at random), and its colour features are the cell's contrast to the frame (its mean
colour minus the frame's, :func:`local_contrast`), so its signal follows what happens at one
place of the frame, as a retinotopic receptive field's would.

Lags (``lags``, optional): given a list of TR lags, each driven parcel draws one from it
(seeded per subject apart from the rest, so the other numbers stay as they are) and its
response is the canonical HRF shifted so that its peak falls ``lag`` TRs after the stimulus
(:func:`lagged_hrf`); without it (None, the default) every parcel has the canonical HRF,
whose peak (:data:`HRF_PEAK_TRS` TRs) is its lag.

The planted truth (per subject: ``driven`` (P,) bool, ``snr`` (P,), ``weights``
(P × n_features), ``lag`` (P,) int64, the TR of each driven parcel's HRF peak (−1 for
undriven parcels), ``cell`` (P,) int64, its receptive field's grid cell, row-major (−1 for
undriven parcels and with ``frame``), and per run the noiseless ``signal/<key>`` (TRs × P)) goes to
``truth/sub-NN.h5`` beside the dataset; it is not part of the release.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.signal import lfilter

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
# keys with a default: their absence (or the default) keeps the default dataset
OPTIONAL = {"receptive_field": "frame", "lags": None}
HRF_PEAK_TRS = int(np.argmax(decode.canonical_hrf(cneuromod.TR)))  # 3: 4.5 s


def check_params(params: dict) -> dict:
    """Validate the simulator's params; a ValueError names the offending key."""
    missing = set(PARAM_KEYS) - set(params)
    unknown = set(params) - set(PARAM_KEYS) - set(OPTIONAL)
    if missing or unknown:
        raise ValueError(
            f"movie simulator params: missing {sorted(missing)}, unknown {sorted(unknown)}"
        )
    p = {**OPTIONAL, **params}
    lags = p["lags"]
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
        ("receptive_field", p["receptive_field"] in ("frame", "cell")),
        (
            "lags",
            lags is None
            or (
                len(lags) >= 1
                and all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in lags)
            ),
        ),
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


def receptive_cells(entropy: list[int], driven: np.ndarray, grid: int, field: str) -> np.ndarray:
    """(P,) int64: each driven parcel's grid cell (row-major), drawn with the random stream
    ``entropy`` (``field`` cell), or −1 (``frame``: every cell; undriven parcels)."""
    if field == "frame":
        return np.full(driven.shape, -1, dtype=np.int64)
    cells = np.random.default_rng(entropy).integers(0, grid * grid, driven.shape)
    return np.where(driven, cells, -1)


def cell_columns(cells: np.ndarray, grid: int) -> np.ndarray:
    """(P × 4·grid²) bool: the columns of :func:`stimulus_features` (colour: 3 per cell;
    motion: 1 per cell) that each parcel's cell holds; every column for cell −1."""
    n_cells = grid * grid
    cell_of_column = np.concatenate([np.repeat(np.arange(n_cells), 3), np.arange(n_cells)])
    return (cells[:, None] < 0) | (cell_of_column[None, :] == cells[:, None])


def local_contrast(features: np.ndarray, grid: int) -> np.ndarray:
    """:func:`stimulus_features` with each cell's mean colour replaced by its difference from
    the frame's mean colour (the mean over the cells); the motion energy as it is."""
    n_cells = grid * grid
    colour = features[:, : 3 * n_cells].reshape(len(features), n_cells, 3)
    contrast = colour - colour.mean(axis=1, keepdims=True)
    return np.concatenate([contrast.reshape(len(features), -1), features[:, 3 * n_cells :]], 1)


def lagged_hrf(tr: float, lag: int) -> np.ndarray:
    """The canonical HRF sampled every TR (:func:`encscale.video.decode.canonical_hrf`),
    shifted by whole TRs so that its peak falls at ``lag`` TRs: zeros in front for a later
    peak, its first samples dropped for an earlier one."""
    hrf = decode.canonical_hrf(tr)
    shift = lag - int(np.argmax(hrf))
    return np.concatenate([np.zeros(shift), hrf]) if shift >= 0 else hrf[-shift:]


def parcel_lags(entropy: list[int], driven: np.ndarray, lags: list[int] | None) -> np.ndarray:
    """(P,) int64: each driven parcel's planted lag (TRs to its HRF's peak), drawn from
    ``lags`` with the random stream ``entropy`` (None: the canonical HRF's peak for all); −1
    for undriven parcels."""
    if lags is None:
        lag = np.full(driven.shape, HRF_PEAK_TRS, dtype=np.int64)
    else:
        rng = np.random.default_rng(entropy)
        lag = rng.choice(np.asarray(lags, dtype=np.int64), size=driven.shape)
    return np.where(driven, lag, -1)


def respond(drive: np.ndarray, lag: np.ndarray, planted: bool) -> np.ndarray:
    """(n_trs, P) responses to the parcels' drive (n_trs, P): each column through the
    canonical HRF (``planted`` False: as the default simulator does, one call for all), or
    through :func:`lagged_hrf` at its parcel's lag."""
    if not planted:
        return decode.convolve_hrf(drive, cneuromod.TR)
    out = np.zeros(drive.shape, dtype=np.float64)
    for value in np.unique(lag[lag >= 0]):
        cols = lag == value
        kernel = lagged_hrf(cneuromod.TR, int(value))
        out[:, cols] = lfilter(kernel, [1.0], drive[:, cols].astype(np.float64), axis=0)
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
        frame_features = stimulus_features(frames, p["grid"])
        if p["receptive_field"] == "cell":
            frame_features = local_contrast(frame_features, p["grid"])
        tr_features = per_tr(frame_features, p["fps"], n_trs)
        features[run] = tr_features - tr_features.mean(axis=0)
    n_features = next(iter(features.values())).shape[1]
    for subject in cneuromod.SUBJECTS[: p["n_subjects"]]:
        rng = np.random.default_rng(named_seed(p["seed"], "subject", subject))
        driven = rng.random(p["n_parcels"]) < p["driven_fraction"]
        driven[0], driven[-1] = True, False  # at least one of each
        weights = rng.normal(0, 1, (p["n_parcels"], n_features)) * driven[:, None]
        entropy = named_seed(p["seed"], "cells", subject)
        cells = receptive_cells(entropy, driven, p["grid"], p["receptive_field"])
        if p["receptive_field"] == "cell":
            weights = weights * cell_columns(cells, p["grid"])
        snr = np.exp(rng.uniform(*np.log(p["snr_range"]), p["n_parcels"]))
        lag = parcel_lags(named_seed(p["seed"], "lags", subject), driven, p["lags"])
        planted = p["lags"] is not None
        signals = {run: respond(f @ weights.T, lag, planted) for run, f in features.items()}
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
            h5["lag"] = lag
            h5["cell"] = cells
            for key, run in zip(bold, signals, strict=True):
                h5[f"signal/{key}"] = signals[run].astype(np.float32)
