"""The movie study's ``stimuli.h5``: every TR clip of the encoding's movies and its VQ-VAE codes
(layout: :mod:`encscale.contracts`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from encscale.contracts import write_movie_stimuli
from encscale.data import cneuromod
from encscale.io import PathLike
from encscale.video import clips
from encscale.video.vqvae import load_checkpoint


def prepare_movie_stimuli(
    movies: Mapping[str, PathLike],
    tokenizer_path: PathLike,
    out_path: PathLike,
    *,
    clip: Mapping[str, Any],
    batch_size: int,
    device: str = "cpu",
    provenance: Mapping[str, Any] | None = None,
) -> None:
    """Write ``stimuli.h5`` of ``movies`` (name → file): a row per TR clip (the ``clip``
    window, ``frames`` at ``fps``, ending where its TR of :data:`encscale.data.cneuromod.TR`
    ends: :func:`~encscale.video.clips.tr_clip_table`) with its codes from the tokenizer
    checkpoint at ``tokenizer_path``, encoded in batches of ``batch_size`` on ``device``.

    ``clip``: ``frames``, ``fps`` and ``size`` (pixels), also written as attributes with
    ``tr`` and the tokenizer's ``n_codes``.
    """
    window = clips.clip_seconds(clip["frames"], clip["fps"])
    table = clips.tr_clip_table(clips.movie_durations(movies), cneuromod.TR, window)
    tokenizer = load_checkpoint(tokenizer_path)
    codes = clips.encode_clips(
        tokenizer, movies, table, **clip, batch_size=batch_size, device=device
    )
    attrs = dict(tr=cneuromod.TR, n_codes=tokenizer.config.n_codes, **clip)
    write_movie_stimuli(out_path, table, codes, attrs, provenance=provenance)
