"""Video clips for the tokenizer and the transformer: where clips start, and their VQ-VAE
codes (which movies: :mod:`encscale.video.selection`).

A clip is ``frames`` frames at ``fps`` (so ``frames / fps`` seconds), each ``size`` × ``size``
pixels in [-0.5, 0.5] (:func:`encscale.video.decode.read_frames`). Two kinds are cut:

- *training clips* (:func:`training_clip_starts`): random windows of the pre-training movies,
  a movie drawn in proportion to its length and the start uniformly within it;
- *TR clips* (:func:`tr_clip_table`): for every TR j of a movie, the window ending where that
  TR ends, (j + 1) · TR; the haemodynamic lag is applied when fMRI samples are paired with
  these clips (:mod:`encscale.data.movies`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np
import pandas as pd
import torch

from encscale.io import PathLike
from encscale.jobs import progress
from encscale.video import decode
from encscale.video.vqvae import VQVAE, clip_from_frames

log = logging.getLogger(__name__)


def clip_seconds(frames: int, fps: float) -> float:
    """Duration (s) of a clip of ``frames`` frames at ``fps``."""
    return frames / fps


def training_clip_starts(
    durations: dict[str, float], n: int, window_s: float, seed: int
) -> pd.DataFrame:
    """``n`` random clip windows (columns ``movie``, ``start_s``) over movies of ``durations``
    (s): a movie with probability proportional to its usable length (duration − window), a
    start uniform in it. Seeded; the rows for a smaller ``n`` are a prefix of those for a
    larger one."""
    names = sorted(durations)
    usable = np.array([durations[m] - window_s for m in names])
    if not len(names) or (usable <= 0).all():
        raise ValueError(f"no movie is longer than a clip ({window_s:.3f} s)")
    usable = np.clip(usable, 0, None)
    rng = np.random.default_rng(seed)
    which = rng.choice(len(names), size=n, p=usable / usable.sum())
    starts = rng.random(n) * usable[which]
    return pd.DataFrame({"movie": np.array(names)[which], "start_s": starts})


def tr_clip_table(durations: dict[str, float], tr: float, window_s: float) -> pd.DataFrame:
    """Every TR clip of the movies: columns ``movie``, ``tr`` (index j), ``start_s`` and
    ``end_s`` = (j + 1)·tr; only windows that lie within the movie (start ≥ 0, end ≤ its
    duration) are listed."""
    frames = []
    for movie in sorted(durations):
        n_trs = int(np.floor(durations[movie] / tr + 1e-9))
        start_s, end_s, valid = decode.tr_windows(n_trs, tr, 0, window_s)
        j = np.flatnonzero(valid)
        frames.append(
            pd.DataFrame({"movie": movie, "tr": j, "start_s": start_s[j], "end_s": end_s[j]})
        )
    return pd.concat(frames, ignore_index=True)


def movie_durations(paths: dict[str, PathLike]) -> dict[str, float]:
    """Duration (s, where the last frame ends) of each movie file; truncated files are errors."""
    return {name: decode.probe_video(path).duration_s for name, path in paths.items()}


def iter_clips(
    paths: dict[str, PathLike], table: pd.DataFrame, frames: int, fps: float, size: int
) -> Iterator[tuple[int, np.ndarray]]:
    """(row, clip (3, frames, size, size) float32) for every row of ``table`` (columns
    ``movie``, ``start_s``), movie by movie, each movie read in one pass
    (:func:`~encscale.video.decode.iter_windows`): the frames
    :func:`~encscale.video.decode.read_frames` reads for its window, channels first."""
    window = clip_seconds(frames, fps)
    all_starts = table["start_s"].to_numpy(dtype=np.float64)
    for movie, rows in sorted(table.groupby("movie").indices.items()):
        starts = all_starts[rows]
        for i, clip in decode.iter_windows(paths[movie], starts, starts + window, fps, size):
            if len(clip) != frames:  # float round-off at the window's end
                raise ValueError(
                    f"{paths[movie]}: read {len(clip)} frames at {starts[i]:.3f} s, "
                    f"expected {frames}"
                )
            yield int(rows[i]), clip_from_frames(clip)


def read_clips(
    paths: dict[str, PathLike], table: pd.DataFrame, frames: int, fps: float, size: int
) -> np.ndarray:
    """The clips of ``table`` (columns ``movie``, ``start_s``) as (n, 3, frames, size, size)."""
    out = np.empty((len(table), 3, frames, size, size), dtype=np.float32)
    for row, clip in iter_clips(paths, table, frames, fps, size):
        out[row] = clip
    return out


def encode_clips(
    model: VQVAE,
    paths: dict[str, PathLike],
    table: pd.DataFrame,
    *,
    frames: int,
    fps: float,
    size: int,
    batch_size: int,
    device: str = "cpu",
) -> np.ndarray:
    """VQ-VAE codes (n, t, h, w) int16 of the clips of ``table``, in its row order: clips
    are read movie by movie (:func:`iter_clips`) and encoded in batches (progress logged,
    :func:`encscale.jobs.progress`)."""
    model = model.to(device).eval()
    codes = None
    batch: list[np.ndarray] = []
    rows: list[int] = []
    bar = progress(total=len(table), desc="encoding clips", unit="clips", write=log.info)

    def encode_batch() -> None:
        nonlocal codes
        c = model.encode(torch.from_numpy(np.stack(batch)).to(device)).cpu().numpy()
        if codes is None:
            codes = np.empty((len(table), *c.shape[1:]), dtype=np.int16)
        codes[rows] = c
        bar.update(len(rows))
        batch.clear()
        rows.clear()

    with bar:
        for row, clip in iter_clips(paths, table, frames, fps, size):
            batch.append(clip)
            rows.append(row)
            if len(batch) == batch_size:
                encode_batch()
        if batch:
            encode_batch()
    if codes is None:
        raise ValueError("no clips to encode")
    return codes
