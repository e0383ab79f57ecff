"""Features of a trained GPT-2 for encoding: each layer's hidden states over the codes of
each TR's clip, pooled, in the features-file layout of :mod:`encscale.contracts`.

``features/<run>.h5``: per layer ``h<i>``, i = 0 (the code and position embeddings) …
layers (the last block, after GPT-2's final layer norm), float32, pooled as ``pooling`` says:

- ``mean`` (the study's reading): the mean over every code position of the clip (t × h × w,
  1024 in the study), a set with k = 1 of ``width`` columns; the spatial layout is lost;
- ``spatial`` (encscale's option): the mean over the code frames (t) only, the code grid
  kept: a layer map (width × h × w, as an image model's), which the fits max-pool to each k
  × k grid of ``encoding.pool_sizes`` and choose (layer, k) per parcel by cross-validation,
  as the image study's fits do (:meth:`encscale.contracts.FeaturesFile.fit_sets`).

File attributes ``model`` (the run), ``n_params``, ``layers``, ``precision``, ``pooling`` and
``spec`` (the GPT-2's architecture as JSON).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from encscale.contracts import (
    FeatureSet,
    LayerMap,
    create_features,
    read_stimulus_codes,
    update_features,
    write_features,
)
from encscale.jobs import progress
from encscale.torchtools import count_parameters
from encscale.video.gpt import GPTSpec, hidden_states, load_gpt, with_start_token

log = logging.getLogger(__name__)

POOLINGS = ("mean", "spatial")


def pooled_hidden_states(
    model: torch.nn.Module, codes: np.ndarray, n_codes: int, precision: str, batch_size: int
) -> list[np.ndarray]:
    """Per layer, (n × width) float32: the mean over each clip's code positions (the start
    token's position left out) of that layer's hidden states."""
    pooled: list[list[np.ndarray]] = []
    starts = range(0, len(codes), batch_size)
    for start in progress(starts, desc="hidden states", unit="batches", write=log.info):
        tokens = with_start_token(torch.from_numpy(codes[start : start + batch_size]), n_codes)
        states = hidden_states(model, tokens, precision)
        if not pooled:
            pooled = [[] for _ in states]
        for out, h in zip(pooled, states, strict=True):
            out.append(h[:, 1:].mean(dim=1).cpu().numpy())
    return [np.concatenate(parts) for parts in pooled]


def spatial_hidden_states(
    model: torch.nn.Module, codes: np.ndarray, n_codes: int, precision: str, batch_size: int
) -> Iterator[list[np.ndarray]]:
    """Per batch of clips, per layer, (B × width × h × w) float32: the mean over each clip's
    code frames (t) of that layer's hidden states, on the code grid (h × w) (the start
    token's position left out; the codes are flattened in (t, h, w) order)."""
    t, h, w = codes.shape[1:]
    starts = range(0, len(codes), batch_size)
    for start in progress(starts, desc="hidden states", unit="batches", write=log.info):
        tokens = with_start_token(torch.from_numpy(codes[start : start + batch_size]), n_codes)
        states = hidden_states(model, tokens, precision)
        yield [
            x[:, 1:].reshape(len(x), t, h, w, -1).mean(dim=1).permute(0, 3, 1, 2).cpu().numpy()
            for x in states
        ]


def extract_gpt_features(
    stimuli_path: str | os.PathLike,
    model_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    name: str,
    batch_size: int = 64,
    device: str = "cpu",
    precision: str = "fp32",
    pooling: str = "mean",
    provenance: Mapping[str, Any] | None = None,
) -> None:
    """Write the features file of the run ``name`` (layout and ``pooling`` in the module
    docstring)."""
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    model, spec = load_gpt(model_path, device)
    codes = read_stimulus_codes(stimuli_path)
    if pooling == "spatial":
        write_spatial_features(
            model, spec, codes, out_path, name, batch_size, precision, provenance
        )
        return
    layers = pooled_hidden_states(model, codes, spec.n_codes, precision, batch_size)
    names = [f"h{i}" for i in range(len(layers))]
    sets = []
    for i, (layer, x) in enumerate(zip(names, layers, strict=True)):
        if not np.isfinite(x).all():
            raise FloatingPointError(f"{model_path}: non-finite hidden states in {layer}")
        fs = FeatureSet(layer, k=1, depth=i / (len(layers) - 1), width=x.shape[1], layer_index=i)
        sets.append((fs, x.astype(np.float32)))
    attrs = dict(
        model=name,
        n_params=count_parameters(model),
        layers=names,
        precision=precision,
        pooling=pooling,
        spec=json.dumps(asdict(spec), sort_keys=True),
    )
    write_features(out_path, sets, attrs, provenance)
    log.info("%s: %d stimuli × %d layers of width %d", name, len(codes), len(names), spec.width)


def write_spatial_features(
    model: torch.nn.Module,
    spec: GPTSpec,
    codes: np.ndarray,
    out_path: str | os.PathLike,
    name: str,
    batch_size: int,
    precision: str,
    provenance: Mapping[str, Any] | None,
) -> None:
    """The ``spatial`` features file: each layer's map (N × width × h × w, float32), written
    batch by batch into a ``.partial`` file renamed when complete."""
    n_layers = spec.layers + 1
    names = [f"h{i}" for i in range(n_layers)]
    _, h, w = codes.shape[1:]
    maps = [
        LayerMap(layer, i / (n_layers - 1), i, spec.width, h, w) for i, layer in enumerate(names)
    ]
    out_path = Path(out_path)
    partial = out_path.with_name(out_path.name + ".partial")
    create_features(partial, [], len(codes), np.float32, maps=maps)
    attrs = dict(
        model=name,
        n_params=count_parameters(model),
        layers=names,
        precision=precision,
        pooling="spatial",
        spec=json.dumps(asdict(spec), sort_keys=True),
    )
    try:
        with update_features(partial, attrs, provenance) as out:
            done = 0
            for batch in spatial_hidden_states(model, codes, spec.n_codes, precision, batch_size):
                for lm, x in zip(maps, batch, strict=True):
                    if not np.isfinite(x).all():
                        raise FloatingPointError(f"{name}: non-finite hidden states in {lm.layer}")
                    out[lm.key][done : done + len(x)] = x
                done += len(batch[0])
        os.replace(partial, out_path)
    finally:
        partial.unlink(missing_ok=True)
    log.info(
        "%s: %d stimuli × %d layer maps of %d × %d × %d",
        name,
        len(codes),
        n_layers,
        spec.width,
        h,
        w,
    )
