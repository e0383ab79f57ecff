"""Video clips for the tokenizer and the transformer: where clips start, and their VQ-VAE
codes (which movies: :mod:`encscale.video.selection`).

A clip is ``frames`` frames at ``fps`` (so ``frames / fps`` seconds), each ``size`` × ``size``
pixels in [-0.5, 0.5] (:func:`encscale.video.decode.read_frames`). Two kinds are cut:

- *training clips* (:func:`training_clip_starts`): random windows of the pre-training movies,
  a movie drawn in proportion to its length and the start uniformly within it;
- *TR clips* (:func:`tr_clip_table`): for every TR j of a movie, the window ending where that
  TR ends, (j + 1) · TR; the haemodynamic lag is applied when fMRI samples are paired with
  these clips (:mod:`encscale.data.movies`).

Clips are read movie by movie, each movie in one pass, so their codes come in the movies'
order, not the table's: :func:`encode_clips` gathers them in memory, and
:func:`write_in_row_order` puts them into an HDF5 dataset in the table's order with memory
bounded by a buffer, however many clips there are (an external sort through a scratch file).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import torch

from encscale.io import PathLike
from encscale.jobs import progress
from encscale.video import decode
from encscale.video.vqvae import VQVAE, clip_from_frames

log = logging.getLogger(__name__)


def _glibc_malloc_trim():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None


_MALLOC_TRIM = _glibc_malloc_trim()


def release_free_heap() -> None:
    """Give the C heap's free pages back to the system (glibc's ``malloc_trim``; elsewhere
    nothing). Encoding a batch allocates and frees buffers of tens of MB among long-lived
    small allocations; without this, glibc's heap keeps the freed fragments and the process
    grows with the number of batches (measured: 80 MB more at 10k clips than at 5k)."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def clip_seconds(frames: int, fps: float) -> float:
    """Duration (s) of a clip of ``frames`` frames at ``fps``."""
    return frames / fps


def training_clip_draws(
    durations: dict[str, float], n: int, window_s: float, seed: int
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The windows of :func:`training_clip_starts` in compact form: the movies' names (sorted),
    each clip's movie as an index into them ((n,), the smallest integer type that holds it)
    and its start (s, (n,) float64)."""
    names = sorted(durations)
    usable = np.array([durations[m] - window_s for m in names])
    if not len(names) or (usable <= 0).all():
        raise ValueError(f"no movie is longer than a clip ({window_s:.3f} s)")
    usable = np.clip(usable, 0, None)
    rng = np.random.default_rng(seed)
    which = rng.choice(len(names), size=n, p=usable / usable.sum())
    starts = rng.random(n) * usable[which]
    return names, which.astype(np.min_scalar_type(max(len(names) - 1, 0))), starts


def training_clip_starts(
    durations: dict[str, float], n: int, window_s: float, seed: int
) -> pd.DataFrame:
    """``n`` random clip windows (columns ``movie``, ``start_s``) over movies of ``durations``
    (s): a movie with probability proportional to its usable length (duration − window), a
    start uniform in it. Seeded. The movies drawn for a smaller ``n`` are a prefix of those
    for a larger one, but not the starts (drawn after all n movies): a run on fewer clips
    reads a prefix of one table's rows (:mod:`encscale.video.tokenizer`)."""
    names, which, starts = training_clip_draws(durations, n, window_s, seed)
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
    for movie, rows in sorted(table.groupby("movie", observed=True).indices.items()):
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


def iter_code_batches(
    model: VQVAE,
    paths: dict[str, PathLike],
    table: pd.DataFrame,
    *,
    frames: int,
    fps: float,
    size: int,
    batch_size: int,
    device: str = "cpu",
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(rows (k,) int64, codes (k, t, h, w) int16) for batches of ``batch_size`` clips of
    ``table``, in the order they are read (movie by movie, :func:`iter_clips`; progress
    logged, :func:`encscale.jobs.progress`)."""
    model = model.to(device).eval()
    batch: list[np.ndarray] = []
    rows: list[int] = []
    bar = progress(total=len(table), desc="encoding clips", unit="clips", write=log.info)

    def encode_batch() -> tuple[np.ndarray, np.ndarray]:
        codes = model.encode(torch.from_numpy(np.stack(batch)).to(device))
        done = np.array(rows, dtype=np.int64), codes.cpu().numpy().astype(np.int16)
        bar.update(len(rows))
        batch.clear()
        rows.clear()
        del codes
        release_free_heap()
        return done

    with bar:
        for row, clip in iter_clips(paths, table, frames, fps, size):
            batch.append(clip)
            rows.append(row)
            if len(batch) == batch_size:
                yield encode_batch()
        if batch:
            yield encode_batch()


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
    """VQ-VAE codes (n, t, h, w) int16 of the clips of ``table``, in its row order, in memory
    (:func:`iter_code_batches`; for many clips, :func:`write_in_row_order` into a file)."""
    codes = None
    for rows, c in iter_code_batches(
        model, paths, table, frames=frames, fps=fps, size=size, batch_size=batch_size, device=device
    ):
        if codes is None:
            codes = np.empty((len(table), *c.shape[1:]), dtype=np.int16)
        codes[rows] = c
    if codes is None:
        raise ValueError("no clips to encode")
    return codes


def write_in_row_order(
    dataset: h5py.Dataset,
    batches: Iterable[tuple[np.ndarray, np.ndarray]],
    *,
    buffer_bytes: int,
    scratch: PathLike,
) -> None:
    """Write rows that come in any order, as batches of (row indices, values), into
    ``dataset`` (n, ...) in row order, holding about ``2 × buffer_bytes`` whatever n.

    Values are gathered in a buffer of ``buffer_bytes``; when it is full its rows are sorted
    and appended to the ``scratch`` file as a *run*. The runs are then merged block by block
    of the buffer's size: each block of the dataset reads, from every run, the contiguous
    stretch of rows that fall in it. If every row fits in the buffer, it is written directly
    and no scratch file is made; otherwise the scratch file (as large as the dataset) is
    removed at the end. Every row of ``dataset`` must come exactly once (checked).
    """
    n, row_shape, dtype = dataset.shape[0], dataset.shape[1:], dataset.dtype
    row_items = int(np.prod(row_shape, dtype=np.int64))
    row_bytes = max(row_items * dtype.itemsize, 1)
    capacity = max(1, min(n, buffer_bytes // row_bytes))
    buffer = np.empty((capacity, *row_shape), dtype=dtype)
    buffer_rows = np.empty(capacity, dtype=np.int64)
    seen = np.zeros(n, dtype=bool)
    runs: list[np.ndarray] = []  # each run's rows, ascending; their values follow in scratch
    filled = placed = 0
    scratch = Path(scratch)
    out = None
    try:

        def spill() -> None:
            nonlocal out
            order = np.argsort(buffer_rows[:filled], kind="stable")
            runs.append(buffer_rows[:filled][order])
            if out is None:
                out = open(scratch, "wb")
            piece = max(1, (4 << 20) // row_bytes)  # written 4 MB at a time
            for i in range(0, filled, piece):
                out.write(buffer[order[i : i + piece]].tobytes())

        for rows, values in batches:
            rows = np.asarray(rows, dtype=np.int64)
            if len(rows) and (rows.min() < 0 or rows.max() >= n or seen[rows].any()):
                raise ValueError(f"{dataset.name}: a row index out of [0, {n}) or repeated")
            if values.shape != (len(rows), *row_shape):
                raise ValueError(
                    f"{dataset.name}: {len(rows)} rows of values {values.shape}, "
                    f"expected rows of {row_shape}"
                )
            seen[rows] = True
            i = 0
            while i < len(rows):
                k = min(len(rows) - i, capacity - filled)
                buffer[filled : filled + k] = values[i : i + k]
                buffer_rows[filled : filled + k] = rows[i : i + k]
                filled, placed, i = filled + k, placed + k, i + k
                if filled == capacity and placed < n:
                    spill()
                    filled = 0
        if placed < n:
            raise ValueError(f"{dataset.name}: {n - placed} of {n} rows never came")
        if not runs:  # every row in the buffer
            order = np.argsort(buffer_rows[:filled], kind="stable")
            for start in range(0, n, capacity):
                dataset[start : start + capacity] = buffer[order[start : start + capacity]]
            return
        if filled:
            spill()
        out.close()
        log.info("merging %d sorted runs of codes into %s", len(runs), dataset.name)
        offsets = np.cumsum([0] + [len(r) for r in runs[:-1]])
        cursors = [0] * len(runs)
        with open(scratch, "rb") as f:
            for start in range(0, n, capacity):
                stop = min(n, start + capacity)
                block = buffer[: stop - start]
                for r, run_rows in enumerate(runs):
                    c, k = cursors[r], int(np.searchsorted(run_rows, stop))
                    if k > c:
                        f.seek(int(offsets[r] + c) * row_bytes)
                        values = np.fromfile(f, dtype=dtype, count=(k - c) * row_items)
                        block[run_rows[c:k] - start] = values.reshape(k - c, *row_shape)
                        cursors[r] = k
                dataset[start:stop] = block
    finally:
        if out is not None:
            out.close()
        if scratch.exists():
            os.unlink(scratch)
