"""Model registry: build a vision model from its config entry and describe its input.

A registry entry (one key of the config's ``models:`` mapping) is either a timm model::

    eva02_large:
      timm: eva02_large_patch14_clip_224.merged2b   # timm name, optionally with its tag
      weights: hub          # random (seeded, default) | hub (Hugging Face cache) | file
      weights_file: null    # with weights: file, a local checkpoint (.safetensors, .pth, .bin)
      kwargs: {}            # extra keyword arguments of timm.create_model
      input_size: null      # default: the model's pretrained config
      layers: all           # all blocks, a list of block indices, or {stride: n}
      prefix_tokens: drop   # class/register tokens: drop, or keep as a feature set of their own

or a plugin, any ``torch.nn.Module`` factory, whose features are the outputs of named
submodules (forward hooks)::

    one_peace:
      factory: one_peace_plugin:build_vision_encoder   # importable "module:callable"
      factory_kwargs: {}
      weights: file
      weights_file: resources/weights/one-peace.pt
      layers: [image_adapter, encoder.layers.0, encoder.layers.1]
      input_size: 256
      mean: [0.48145466, 0.4578275, 0.40821073]
      std: [0.26862954, 0.26130258, 0.27577711]
      num_prefix_tokens: 1  # tokens before the patch grid in (B, N, C) outputs
      token_layout: BNC     # or NBC for sequence-first (fairseq-style) modules

Parameters are counted on the instantiated model and stored with its features.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from encscale.io import PathLike
from encscale.torchtools import count_parameters, import_timm

WEIGHTS = ("random", "hub", "file")


@dataclass(frozen=True)
class InputSpec:
    """How images are fed to a model: square side (px) and per-channel mean/std on [0, 1]."""

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


def build_model(spec: dict[str, Any], name: str = "", *, offline: bool = False) -> torch.nn.Module:
    """Instantiate the model of a registry entry, in eval mode, without a classifier head.

    ``offline``: never reach the network (``HF_HUB_OFFLINE``); a missing hub checkpoint then
    fails at once with an error naming the model and the cache that was searched.
    """
    label = f"model '{name or spec.get('timm') or spec.get('factory')}'"
    weights = spec.get("weights", "random")
    if weights not in WEIGHTS:
        raise ValueError(f"{label}: weights must be one of {WEIGHTS}, got {weights!r}")
    weights_file = spec.get("weights_file")
    if weights == "file":
        if not weights_file:
            raise ValueError(f"{label}: weights: file needs weights_file")
        if not Path(weights_file).is_file():
            raise FileNotFoundError(f"{label}: weights file {weights_file} does not exist")
    if weights == "random":
        torch.manual_seed(int(spec.get("seed", 0)))
    if "factory" in spec:
        model = _build_plugin(spec, label, weights, weights_file)
    else:
        model = _build_timm(spec, label, weights, weights_file, offline)
    return model.eval()


def _build_timm(
    spec: dict[str, Any], label: str, weights: str, weights_file: str | None, offline: bool
) -> torch.nn.Module:
    if offline:
        set_offline()
    timm = import_timm()
    kwargs = dict(spec.get("kwargs", {}))
    if weights == "file":
        kwargs["pretrained_cfg_overlay"] = dict(file=str(weights_file))
    try:
        return timm.create_model(
            spec["timm"], pretrained=weights != "random", num_classes=0, **kwargs
        )
    except (OSError, RuntimeError, ValueError) as err:
        where = ""
        if weights == "hub":
            where = f" from the Hugging Face cache {_hub_cache()}" + (
                " (offline)" if offline else ""
            )
        elif weights == "file":
            where = f" from the file {weights_file}"
        raise RuntimeError(f"{label}: cannot build timm '{spec['timm']}'{where}: {err}") from err


def _build_plugin(
    spec: dict[str, Any], label: str, weights: str, weights_file: str | None
) -> torch.nn.Module:
    target = spec["factory"]
    module_name, _, attr = target.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise ImportError(f"{label}: cannot import factory '{target}' ({err})") from err
    model = factory(**spec.get("factory_kwargs", {}))
    if not isinstance(model, torch.nn.Module):
        raise TypeError(
            f"{label}: factory '{target}' returned {type(model).__name__}, not a Module"
        )
    if weights == "hub":
        raise ValueError(f"{label}: plugin models take weights: random or file, not hub")
    if weights == "file":
        model.load_state_dict(load_checkpoint(weights_file))
    return model


def load_checkpoint(path: PathLike) -> dict[str, torch.Tensor]:
    """A state dict from a .safetensors file or a torch checkpoint (tensors only)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model", "module"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    return state


def set_offline() -> None:
    """Make huggingface_hub refuse network access, even if it was imported already."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        from huggingface_hub import constants
    except ImportError:
        return
    constants.HF_HUB_OFFLINE = True


def _hub_cache() -> str:
    try:
        from huggingface_hub import constants
    except ImportError:
        return "(huggingface_hub not installed)"
    return str(constants.HF_HUB_CACHE)


def input_spec(model: torch.nn.Module, spec: dict[str, Any]) -> InputSpec:
    """Input side and normalisation: the registry entry's, else the model's own (the fixed
    image size of a patch-embedding model, the pretrained config's size, mean and std)."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    fixed = getattr(getattr(model, "patch_embed", None), "img_size", None)  # ViT-style models
    size = spec.get("input_size") or (fixed or cfg.get("input_size") or [None])[-1]
    mean, std = spec.get("mean") or cfg.get("mean"), spec.get("std") or cfg.get("std")
    if size is None or mean is None or std is None:
        raise ValueError(
            f"model '{spec.get('factory') or spec.get('timm')}': give input_size, mean and std "
            "in its registry entry (the model has no pretrained config)"
        )
    return InputSpec(size=int(size), mean=tuple(mean), std=tuple(std))


def reported_params(spec: dict[str, Any], model: torch.nn.Module) -> int:
    """The parameters a study reports for an entry: its ``n_params`` where it gives one
    (e.g. a vision branch inside a multimodal wrapper), else the model's count."""
    return int(spec.get("n_params") or count_parameters(model))


def weights_source(spec: dict[str, Any]) -> str:
    """Human-readable provenance of the weights, stored with the features."""
    weights = spec.get("weights", "random")
    if weights == "hub":
        return f"Hugging Face hub via timm: {spec['timm']}"
    if weights == "file":
        return f"file: {spec['weights_file']}"
    return f"random initialisation, seed {int(spec.get('seed', 0))}"
