"""One GPT-2 run's training from the pre-training codes, and the table of all runs (the
runs themselves, points of the grid: :mod:`encscale.video.grid`).

``gpt/<run>/log.tsv``: the training log (:data:`encscale.video.gpt.LOG_COLUMNS`).
``training/runs.tsv``: one row per run (``RUN_COLUMNS``): its grid point, ``context``,
``n_params``, ``tokens`` and ``flops`` trained (≈ 6 · parameters · tokens), ``wall_s``,
``tokens_per_s`` (the median over the log's windows after the first, which holds the
warm-up), ``peak_mem_mb``, the final ``val_loss`` and ``loss``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from encscale.io import PathLike, atomic_path, open_h5, read_dataset
from encscale.torchtools import count_parameters
from encscale.video.gpt import (
    LOG_COLUMNS,
    GPTSpec,
    TrainSettings,
    build_gpt,
    save_gpt,
    train_gpt,
)
from encscale.video.grid import DIMENSIONS, run_name

log = logging.getLogger(__name__)
RUN_COLUMNS = [
    "run",
    *DIMENSIONS,
    "context",
    "n_params",
    "tokens",
    "flops",
    "wall_s",
    "tokens_per_s",
    "peak_mem_mb",
    "val_loss",
    "loss",
]


def read_codes(
    tokens_path: PathLike, n_val: int, n_train: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """Validation and training codes of a run (the first ``n_val`` clips, then the next
    ``n_train``) and the codebook size."""
    with open_h5(tokens_path, "pre-training codes") as h5:
        codes = read_dataset(h5, "codes", ndim=4)
        n_codes = int(h5.attrs["n_codes"])
    if n_val + n_train > len(codes):
        raise ValueError(
            f"{tokens_path}: {len(codes)} clips, but the run needs {n_val} validation and "
            f"{n_train} training clips"
        )
    return codes[:n_val], codes[n_val : n_val + n_train], n_codes


def train_run(
    tokens_path: PathLike,
    model_path: PathLike,
    log_path: PathLike,
    *,
    point: Mapping[str, Any],
    training: Mapping[str, Any],
    checkpoint: PathLike,
    device: str = "cpu",
) -> list[dict[str, Any]]:
    """Train the run at grid ``point`` and write its model and log; resumes from
    ``checkpoint`` (kept during training, removed once the outputs are written).

    ``training``: ``context`` (null: a clip's codes + 1), ``epochs``, ``n_val``, ``seed`` and
    the :class:`~encscale.video.gpt.TrainSettings` fields ``batch_size``, ``lr``, ``min_lr_frac``,
    ``warmup_frac``, ``weight_decay``, ``grad_clip``, ``checkpoint_every``, ``log_every``,
    ``eval_every``.
    """
    val, train, n_codes = read_codes(tokens_path, training["n_val"], point["n_samples"])
    seq = int(np.prod(train.shape[1:]))
    spec = GPTSpec(
        width=point["width"],
        layers=point["layers"],
        heads=point["heads"],
        context=training["context"] or seq + 1,
        n_codes=n_codes,
    )
    keys = ("batch_size", "lr", "min_lr_frac", "warmup_frac", "weight_decay", "grad_clip")
    keys += ("checkpoint_every", "log_every", "eval_every", "seed")
    settings = TrainSettings(
        n_samples=point["n_samples"] * training["epochs"],
        precision=point["precision"],
        **{k: training[k] for k in keys},
    )
    model = build_gpt(spec, seed=training["seed"]).to(device)
    log.info(
        "%s: %d parameters, %d steps of %d clips × %d codes",
        run_name(point),
        count_parameters(model),
        settings.steps,
        settings.batch_size,
        seq,
    )

    def progress(row: dict[str, Any]) -> None:
        log.info(
            "step %d/%d: loss %.4f, val %.4f, %.0f tokens/s, %.0f MB",
            row["step"],
            settings.steps,
            row["loss"],
            row["val_loss"],
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
        context=saved["spec"]["context"],
        n_params=n_params,
        tokens=int(last["tokens"]),
        flops=float(last["flops"]),
        wall_s=float(last["wall_s"]),
        tokens_per_s=float(np.median(rates[1:] if len(rates) > 1 else rates)),
        peak_mem_mb=float(rows["peak_mem_mb"].max()),
        val_loss=float(last["val_loss"]),
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
