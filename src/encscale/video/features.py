"""Features of a trained GPT-2 for encoding: each layer's hidden states, averaged over the
codes of each TR's clip, in the features-file layout of :mod:`encscale.contracts`.

``features/<run>.h5``: one set per layer, ``h<i>`` with k = 1, float32, for i = 0 (the code
and position embeddings) … layers (the last block, after GPT-2's final layer norm); file
attributes ``model`` (the run), ``n_params``, ``layers``, ``precision`` and ``spec`` (the
GPT-2's architecture as JSON).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

import numpy as np
import torch

from encscale.contracts import FeatureSet, read_stimulus_codes, write_features
from encscale.jobs import progress
from encscale.torchtools import count_parameters
from encscale.video.gpt import hidden_states, load_gpt, with_start_token

log = logging.getLogger(__name__)


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


def extract_gpt_features(
    stimuli_path: str | os.PathLike,
    model_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    name: str,
    batch_size: int = 64,
    device: str = "cpu",
    precision: str = "fp32",
    provenance: Mapping[str, Any] | None = None,
) -> None:
    """Write the features file of the run ``name`` (layout in the module docstring)."""
    model, spec = load_gpt(model_path, device)
    codes = read_stimulus_codes(stimuli_path)
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
        spec=json.dumps(asdict(spec), sort_keys=True),
    )
    write_features(out_path, sets, attrs, provenance)
    log.info("%s: %d stimuli × %d layers of width %d", name, len(codes), len(names), spec.width)
