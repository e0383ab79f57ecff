"""One GPT-2 run's training from the pre-training codes, and the table of all runs (the
runs themselves, points of the grid: :mod:`encscale.video.grid`).

A run reads ``tokens/pretrain.h5`` (:mod:`encscale.video.tokenizer`): its first ``n_val``
clips validate with windows overlapping the training clips' (``val_loss_overlap``), the next
``n_samples`` are the run's training clips; and ``tokens/validation.h5``, clips of held-out
episodes (:mod:`encscale.video.heldout`), whose first ``n_val`` give ``val_loss_heldout``.
It reads only those rows (:func:`read_codes`), so its memory grows with its own clips, not
the file's (:func:`encscale.video.budget.gpt_mem_mb`, the job's request).

``gpt/<run>/log.tsv``: the training log (:data:`encscale.video.gpt.LOG_COLUMNS`).
``training/runs.tsv``: one row per run (``RUN_COLUMNS``): its grid point, its ``schedule``
(:data:`encscale.video.grid.SCHEDULES`), optimiser ``steps``, ``clips_seen`` (repeats
included) and ``epochs`` (clips seen per distinct clip), ``context``, ``n_params``,
``tokens`` and ``flops`` trained (≈ 6 · parameters · tokens), ``wall_s``, ``tokens_per_s``
(the median over the log's windows after the first, which holds the warm-up),
``peak_mem_mb``, the final ``val_loss_heldout``, ``val_loss_overlap`` and ``loss``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from encscale.io import PathLike, atomic_path, open_h5
from encscale.torchtools import count_parameters
from encscale.video.gpt import (
    LOG_COLUMNS,
    GPTSpec,
    TrainSettings,
    build_gpt,
    save_gpt,
    train_gpt,
)
from encscale.video.grid import DIMENSIONS, clips_seen, run_name, schedule
from encscale.video.heldout import check_disjoint

log = logging.getLogger(__name__)
RUN_COLUMNS = [
    "run",
    *DIMENSIONS,
    "schedule",
    "steps",
    "clips_seen",
    "epochs",
    "context",
    "n_params",
    "tokens",
    "flops",
    "wall_s",
    "tokens_per_s",
    "peak_mem_mb",
    "val_loss_heldout",
    "val_loss_overlap",
    "loss",
]
TRAIN_KEYS = ("batch_size", "lr", "min_lr_frac", "warmup_frac", "weight_decay", "grad_clip")
TRAIN_KEYS += ("checkpoint_every", "log_every", "eval_every", "seed")


MOVIE_BLOCK = 1 << 20  # rows of the movie names read at a time (their episodes checked)


def _codes_dataset(h5, path: PathLike) -> Any:
    """The ``codes`` dataset (n, t, h, w) of an open file, unread."""
    if "codes" not in h5:
        raise KeyError(f"{path}: dataset 'codes' is missing")
    codes = h5["codes"]
    if codes.ndim != 4:
        raise ValueError(f"{path}: dataset 'codes' has shape {codes.shape}, expected 4-D")
    return codes


def _movies(h5, path: PathLike, start: int, stop: int) -> list[str]:
    """The movies of rows ``start:stop``, read a block at a time (memory independent of the
    rows)."""
    if "movie" not in h5:
        raise ValueError(f"{path}: no 'movie' dataset (which movie each clip is from)")
    movie = h5["movie"]
    stop = min(stop, len(movie))
    names: set = set()
    for lo in range(start, stop, MOVIE_BLOCK):
        names.update(np.unique(movie[lo : min(lo + MOVIE_BLOCK, stop)]).tolist())
    return sorted(m.decode() if isinstance(m, bytes) else str(m) for m in names)


def read_codes(
    tokens_path: PathLike, heldout_path: PathLike, n_val: int, n_train: int
) -> tuple[np.ndarray, dict[str, np.ndarray], int]:
    """A run's training codes (``n_train`` clips after the first ``n_val`` of
    ``tokens_path``), its validation sets' (``overlap``: those first ``n_val``; ``heldout``:
    the first ``n_val`` of ``heldout_path``) and the codebook size. Raises ValueError if a
    file has too few clips, the two disagree on the codebook, or the held-out clips share
    an episode with the training clips.

    Only the run's rows are read, each file's as one contiguous slice (the first
    ``n_val + n_train`` rows of ``tokens_path``, the first ``n_val`` of ``heldout_path``), so
    a run on 10k clips holds 10k clips' codes, not the file's 6M: the training codes and the
    ``overlap`` set are views of one array (:func:`encscale.video.budget.gpt_peak_bytes`).
    """
    with open_h5(tokens_path, "pre-training codes") as h5:
        codes = _codes_dataset(h5, tokens_path)
        n_codes = int(h5.attrs["n_codes"])
        if n_val + n_train > len(codes):
            raise ValueError(
                f"{tokens_path}: {len(codes)} clips, but the run needs {n_val} validation and "
                f"{n_train} training clips"
            )
        shape = codes.shape[1:]
        train_movies = _movies(h5, tokens_path, n_val, n_val + n_train)
        used = codes[: n_val + n_train]
    with open_h5(heldout_path, "held-out validation codes") as h5:
        heldout = _codes_dataset(h5, heldout_path)
        heldout_codes = int(h5.attrs["n_codes"])
        if len(heldout) < n_val:
            raise ValueError(f"{heldout_path}: {len(heldout)} clips, but the run needs {n_val}")
        if heldout_codes != n_codes or heldout.shape[1:] != shape:
            raise ValueError(
                f"{heldout_path}: codes {heldout.shape[1:]} of {heldout_codes}, but "
                f"{tokens_path} has {shape} of {n_codes}: not the same tokenizer"
            )
        heldout_movies = _movies(h5, heldout_path, 0, n_val)
        check_disjoint(train_movies, heldout_movies, str(heldout_path))
        val = {"heldout": heldout[:n_val], "overlap": used[:n_val]}
    return used[n_val:], val, n_codes


def train_settings(point: Mapping[str, Any], training: Mapping[str, Any]) -> TrainSettings:
    """The :class:`~encscale.video.gpt.TrainSettings` of the run at grid ``point``: it sees
    :func:`~encscale.video.grid.clips_seen` clips (one pass over its ``n_samples`` clips,
    ``training['epochs']`` times, or ``point['steps']`` full batches)."""
    return TrainSettings(
        n_samples=clips_seen(point, training["batch_size"], training["epochs"]),
        precision=point["precision"],
        **{k: training[k] for k in TRAIN_KEYS},
    )


def train_run(
    tokens_path: PathLike,
    heldout_path: PathLike,
    model_path: PathLike,
    log_path: PathLike,
    *,
    point: Mapping[str, Any],
    training: Mapping[str, Any],
    checkpoint: PathLike,
    device: str = "cpu",
) -> list[dict[str, Any]]:
    """Train the run at grid ``point`` on its clips of ``tokens_path``, validated on those
    and on the held-out clips of ``heldout_path`` (:func:`read_codes`), and write its model
    and log; resumes from ``checkpoint`` (kept during training, removed once the outputs are
    written).

    ``training``: ``context`` (null: a clip's codes + 1), ``epochs``, ``n_val``, ``seed`` and
    the :class:`~encscale.video.gpt.TrainSettings` fields ``batch_size``, ``lr``, ``min_lr_frac``,
    ``warmup_frac``, ``weight_decay``, ``grad_clip``, ``checkpoint_every``, ``log_every``,
    ``eval_every``.
    """
    train, val, n_codes = read_codes(
        tokens_path, heldout_path, training["n_val"], point["n_samples"]
    )
    seq = int(np.prod(train.shape[1:]))
    spec = GPTSpec(
        width=point["width"],
        layers=point["layers"],
        heads=point["heads"],
        context=training["context"] or seq + 1,
        n_codes=n_codes,
    )
    settings = train_settings(point, training)
    model = build_gpt(spec, seed=training["seed"]).to(device)
    log.info(
        "%s: %d parameters, %d steps of %d clips × %d codes (%.3g epochs over %d clips)",
        run_name(point),
        count_parameters(model),
        settings.steps,
        settings.batch_size,
        seq,
        settings.n_samples / len(train),
        len(train),
    )

    def progress(row: dict[str, Any]) -> None:
        log.info(
            "step %d/%d: loss %.4f, val %.4f held-out, %.4f overlap, %.0f tokens/s, %.0f MB",
            row["step"],
            settings.steps,
            row["loss"],
            row["val_loss_heldout"],
            row["val_loss_overlap"],
            row["tokens_per_s"],
            row["peak_mem_mb"],
        )

    rows = train_gpt(model, train, val, spec, settings, checkpoint=checkpoint, progress=progress)
    save_gpt(model.cpu(), spec, model_path)
    with atomic_path(log_path) as tmp:
        pd.DataFrame(rows, columns=LOG_COLUMNS).to_csv(tmp, sep="\t", index=False)
    Path(checkpoint).unlink(missing_ok=True)
    return rows


def summarise_run(
    name: str, point: Mapping[str, Any], log_path: PathLike, model_path: PathLike
) -> dict[str, Any]:
    """The runs.tsv row of one run, from its log and model files."""
    rows = pd.read_csv(log_path, sep="\t")
    if rows.empty or list(rows.columns) != LOG_COLUMNS:
        raise ValueError(f"{log_path}: not a training log (columns {LOG_COLUMNS})")
    saved = torch.load(model_path, map_location="cpu", weights_only=True)
    n_params = sum(t.numel() for k, t in saved["state"].items() if k != "lm_head.weight")
    rates = rows["tokens_per_s"].to_numpy()
    last = rows.iloc[-1]
    return dict(
        run=name,
        **{d: point[d] for d in DIMENSIONS},
        schedule=schedule(point),
        steps=int(last["step"]),
        clips_seen=int(last["samples"]),
        epochs=float(last["samples"]) / point["n_samples"],
        context=saved["spec"]["context"],
        n_params=n_params,
        tokens=int(last["tokens"]),
        flops=float(last["flops"]),
        wall_s=float(last["wall_s"]),
        tokens_per_s=float(np.median(rates[1:] if len(rates) > 1 else rates)),
        peak_mem_mb=float(rows["peak_mem_mb"].max()),
        val_loss_heldout=float(last["val_loss_heldout"]),
        val_loss_overlap=float(last["val_loss_overlap"]),
        loss=float(last["loss"]),
    )


def runs_table(
    runs: Mapping[str, Mapping[str, Any]], logs: Sequence[PathLike], models: Sequence[PathLike]
) -> pd.DataFrame:
    """runs.tsv: one row per run, in the order of ``runs``."""
    rows = [
        summarise_run(name, point, log_path, model_path)
        for (name, point), log_path, model_path in zip(runs.items(), logs, models, strict=True)
    ]
    return pd.DataFrame(rows, columns=RUN_COLUMNS)
