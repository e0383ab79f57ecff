"""Model registry: build a vision model from its config entry and describe its input.

A registry entry (one key of the config's ``models:`` mapping) looks like::

    convnext_s:
      timm: convnext_atto          # timm architecture name
      kwargs: {dims: [24, 48, 96, 192], depths: [1, 1, 3, 1], ls_init_value: 1.0}
      pretrained: false            # false: seeded random weights (no download)
      seed: 0                      # seed of the random initialisation
      input_size: 64               # square input side in pixels

Parameters are counted on the instantiated model and stored with its features.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from encscale._compat import import_timm


@dataclass(frozen=True)
class InputSpec:
    """How images are fed to a model: square side (px) and per-channel mean/std on [0, 1]."""

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


def build_model(spec: dict[str, Any]) -> torch.nn.Module:
    """Instantiate the timm model of a registry entry, in eval mode, without a classifier head."""
    timm = import_timm()
    kwargs = dict(spec.get("kwargs", {}))
    pretrained = bool(spec.get("pretrained", False))
    if not pretrained:
        torch.manual_seed(int(spec.get("seed", 0)))
    try:
        model = timm.create_model(spec["timm"], pretrained=pretrained, num_classes=0, **kwargs)
    except RuntimeError as err:
        raise RuntimeError(f"model '{spec['timm']}': cannot build it ({err})") from err
    return model.eval()


def count_parameters(model: torch.nn.Module) -> int:
    """Number of parameters of the model (all tensors, trainable or not)."""
    return sum(p.numel() for p in model.parameters())


def input_spec(model: torch.nn.Module, spec: dict[str, Any]) -> InputSpec:
    """Input side from the registry entry (else the model's config) and its normalisation."""
    cfg = model.pretrained_cfg
    size = int(spec.get("input_size") or cfg["input_size"][-1])
    return InputSpec(size=size, mean=tuple(cfg["mean"]), std=tuple(cfg["std"]))


def weights_source(spec: dict[str, Any]) -> str:
    """Human-readable provenance of the weights, stored with the features."""
    if spec.get("pretrained", False):
        return f"timm pretrained: {spec['timm']}"
    return f"random initialisation, seed {int(spec.get('seed', 0))}"
