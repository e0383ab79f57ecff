"""The study's tokenizer: a VQ-VAE trained once per dataset on random clips of the
pre-training movies, then used to turn clips into codes.

``tokens/pretrain.h5``: ``codes`` (n × t × h × w) int16 of ``n`` random pre-training clips
(:func:`encscale.video.clips.training_clip_starts`, seeded: the first ``n_val`` rows are the
transformer's validation clips, the rest its training clips in a fixed order, so a run on
fewer clips trains on a prefix of a larger run's), ``movie`` (n,) str and ``start_s`` (n,);
attributes ``n_codes``, ``frames``, ``fps``, ``size``, ``seed``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch

from encscale.io import PathLike, atomic_path, create_h5
from encscale.jobs import progress
from encscale.video import clips
from encscale.video.vqvae import VQVAE, VQVAEConfig, load_checkpoint, save_checkpoint, train_vqvae

log = logging.getLogger(__name__)
ARCHITECTURE_KEYS = ("channels", "n_codes", "code_dim", "downsample", "n_res_blocks")


def fit_tokenizer(
    movies: Mapping[str, PathLike],
    out_path: PathLike,
    log_path: PathLike,
    *,
    clip: Mapping[str, Any],
    settings: Mapping[str, Any],
    device: str = "cpu",
) -> None:
    """Train a VQ-VAE on ``settings['n_clips']`` random clips of ``movies`` (name → file) and
    write its checkpoint and a per-step log (TSV: step, recon_loss, commitment, perplexity).

    ``clip``: ``frames``, ``fps``, ``size``; ``settings``: the architecture
    (``ARCHITECTURE_KEYS``), ``n_clips``, ``steps``, ``batch_size``, ``lr`` and ``seed``.
    """
    config = VQVAEConfig(
        **{
            k: tuple(v) if k == "downsample" else v
            for k, v in settings.items()
            if k in ARCHITECTURE_KEYS
        }
    )
    window = clips.clip_seconds(clip["frames"], clip["fps"])
    table = clips.training_clip_starts(
        clips.movie_durations(movies), settings["n_clips"], window, settings["seed"]
    )
    data = torch.from_numpy(
        clips.read_clips(movies, table, clip["frames"], clip["fps"], clip["size"])
    )
    log.info("training the VQ-VAE on %d clips of shape %s", len(data), tuple(data.shape[1:]))
    torch.manual_seed(settings["seed"])
    model = VQVAE(config).to(device)

    steps = progress(total=settings["steps"], desc="VQ-VAE training", unit="steps", write=log.info)

    def step_done(step: int, record: dict) -> None:
        losses = {k: f"{v:.5g}" for k, v in record.items() if k != "step"}
        steps.set_postfix(losses, refresh=False)  # the last step's, in the next progress line
        steps.update()

    with steps:
        records = train_vqvae(
            model,
            data.to(device),
            steps=settings["steps"],
            batch_size=min(settings["batch_size"], len(data)),
            lr=settings["lr"],
            seed=settings["seed"],
            log=step_done,
        )
    save_checkpoint(model.cpu(), out_path)
    with atomic_path(log_path) as tmp:
        pd.DataFrame(records).to_csv(tmp, sep="\t", index=False)


def tokenize_pretraining_clips(
    movies: Mapping[str, PathLike],
    tokenizer_path: PathLike,
    out_path: PathLike,
    *,
    n: int,
    clip: Mapping[str, Any],
    seed: int,
    batch_size: int = 32,
    device: str = "cpu",
    provenance: Mapping[str, Any] | None = None,
) -> None:
    """Codes of ``n`` random pre-training clips into ``tokens/pretrain.h5`` (module docstring)."""
    model = load_checkpoint(tokenizer_path)
    window = clips.clip_seconds(clip["frames"], clip["fps"])
    table = clips.training_clip_starts(clips.movie_durations(movies), n, window, seed)
    codes = clips.encode_clips(model, movies, table, **clip, batch_size=batch_size, device=device)
    with create_h5(out_path, provenance) as h5:
        h5["codes"] = codes
        h5["movie"] = table["movie"].to_numpy(dtype="S")
        h5["start_s"] = table["start_s"].to_numpy(dtype=np.float64)
        h5.attrs.update(n_codes=model.config.n_codes, seed=seed, **clip)
    log.info("%d clips → codes %s", n, codes.shape[1:])
