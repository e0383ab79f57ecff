"""The study's tokenizer: a VQ-VAE trained once per dataset on random clips of the
pre-training movies, then used to turn clips into codes.

``tokens/pretrain.h5``: ``codes`` (n × t × h × w) int16 of ``n`` random pre-training clips
(:func:`encscale.video.clips.training_clip_starts`, seeded: the first ``n_val`` rows are the
transformer's validation clips, the rest its training clips in a fixed order, so a run on
fewer clips trains on a prefix of a larger run's), ``movie`` (n,) str and ``start_s`` (n,);
attributes ``n_codes``, ``frames``, ``fps``, ``size``, ``seed``. The codes are written as they
are encoded (:func:`encscale.video.clips.write_in_row_order`), so the job's memory does not
grow with the codes (:func:`encscale.video.budget.tokenize_mem_mb`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from encscale.io import PathLike, atomic_path, create_h5, file_identity
from encscale.jobs import progress
from encscale.video import clips
from encscale.video.budget import CODE_BUFFER_BYTES, code_shape
from encscale.video.vqvae import VQVAE, VQVAEConfig, load_checkpoint, save_checkpoint, train_vqvae

log = logging.getLogger(__name__)
ARCHITECTURE_KEYS = ("channels", "n_codes", "code_dim", "downsample", "n_res_blocks", "attention")
CHUNK_BYTES = 1 << 20  # of the codes dataset's HDF5 chunks (whole rows)


def fit_tokenizer(
    movies: Mapping[str, PathLike],
    out_path: PathLike,
    log_path: PathLike,
    *,
    clip: Mapping[str, Any],
    settings: Mapping[str, Any],
    device: str = "cpu",
    checkpoint: PathLike | None = None,
) -> None:
    """Train a VQ-VAE on ``settings['n_clips']`` random clips of ``movies`` (name → file) and
    write its checkpoint and a per-step log (TSV: step, recon_loss, commitment, perplexity).

    ``clip``: ``frames``, ``fps``, ``size``; ``settings``: the architecture
    (``ARCHITECTURE_KEYS``), ``n_clips``, ``steps``, ``batch_size``, ``lr``, ``seed`` and
    ``checkpoint_every``. ``checkpoint``: where training keeps its resumable state; a killed
    job rerun resumes from it (if the settings, clip shape and movie files are the same) to
    the same model and log as an uninterrupted one. It is removed once the outputs are written.
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
    bar = None  # begun at the first step run: a resumed run's count starts where it stopped

    def step_done(step: int, record: dict) -> None:
        nonlocal bar
        if bar is None:
            bar = progress(
                total=settings["steps"],
                initial=step,
                desc="VQ-VAE training",
                unit="steps",
                write=log.info,
            )
        losses = {k: f"{v:.5g}" for k, v in record.items() if k != "step"}
        bar.set_postfix(losses, refresh=False)  # the last step's, in the next progress line
        bar.update()

    data_id = dict(
        movies={name: file_identity(path) for name, path in sorted(movies.items())},
        clip={k: clip[k] for k in ("frames", "fps", "size")},
    )
    try:
        records = train_vqvae(
            model,
            data.to(device),
            steps=settings["steps"],
            batch_size=min(settings["batch_size"], len(data)),
            lr=settings["lr"],
            seed=settings["seed"],
            log=step_done,
            checkpoint=checkpoint,
            checkpoint_every=settings.get("checkpoint_every", 100),
            data_id=data_id,
        )
    finally:
        if bar is not None:
            bar.close()
    save_checkpoint(model.cpu(), out_path)
    with atomic_path(log_path) as tmp:
        pd.DataFrame(records).to_csv(tmp, sep="\t", index=False)
    if checkpoint:
        Path(checkpoint).unlink(missing_ok=True)


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
    buffer_bytes: int = CODE_BUFFER_BYTES,
) -> None:
    """Codes of ``n`` random pre-training clips into ``tokens/pretrain.h5`` (module docstring).

    The codes are written to the file as batches are encoded, through a buffer of
    ``buffer_bytes`` and, when they do not all fit in it, a scratch file beside ``out_path``
    (as large as the codes, removed at the end): memory holds the model, a batch of clips and
    the buffer, and per clip only its table row (:data:`encscale.video.budget.BYTES_PER_CLIP`).
    """
    if n < 1:
        raise ValueError(f"n must be >= 1 (clips to encode), got {n}")
    model = load_checkpoint(tokenizer_path)
    window = clips.clip_seconds(clip["frames"], clip["fps"])
    names, which, starts = clips.training_clip_draws(clips.movie_durations(movies), n, window, seed)
    # the table as a categorical (a small integer per clip, not a string)
    table = pd.DataFrame({"movie": pd.Categorical.from_codes(which, names), "start_s": starts})
    shape = code_shape(model.config.downsample, clip["frames"], clip["size"])
    row_bytes = 2 * int(np.prod(shape))
    chunk_rows = int(min(n, max(1, CHUNK_BYTES // row_bytes)))
    name_bytes = max(len(names[i].encode()) for i in np.unique(which))
    out_path = Path(out_path)
    for stale in out_path.parent.glob(f".{out_path.name}.scratch-*"):  # left by a killed job
        stale.unlink(missing_ok=True)
    with create_h5(out_path, provenance) as h5:
        codes = h5.create_dataset(
            "codes", shape=(n, *shape), dtype=np.int16, chunks=(chunk_rows, *shape)
        )
        clips.write_in_row_order(
            codes,
            clips.iter_code_batches(
                model, movies, table, **clip, batch_size=batch_size, device=device
            ),
            buffer_bytes=buffer_bytes,
            scratch=out_path.with_name(f".{out_path.name}.scratch-{os.getpid()}"),
        )
        movie = h5.create_dataset("movie", shape=(n,), dtype=f"S{name_bytes}")
        encoded = np.array([m.encode() for m in names], dtype=f"S{name_bytes}")
        block = max(1, buffer_bytes // max(name_bytes, 1))
        for i in range(0, n, block):
            movie[i : i + block] = encoded[which[i : i + block]]
        h5["start_s"] = starts
        h5.attrs.update(n_codes=model.config.n_codes, seed=seed, **clip)
    log.info("%d clips → codes %s", n, shape)
