"""Layer capture: every chosen layer's spatial map (and prefix tokens) of an image model.

Layers are a timm model's blocks/stages (``forward_intermediates``, which puts a
transformer's patch tokens back on their grid and splits off its prefix tokens) or the
outputs of named submodules (forward hooks, removed after use): a plugin model's always,
a timm model's where its ``layers`` are names (e.g. ConvNeXt's stem and every block,
``[stem, "stages.*.blocks.*"]``, where ``forward_intermediates`` gives only its 4 stages).
A map is max-pooled to a k×k grid (:func:`maxpool_tokens`) to form a feature set.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from encscale.vision.registry import InputSpec, input_spec


def maxpool_tokens(fmap: torch.Tensor, k: int, index_bytes: int = 16 * 2**20) -> torch.Tensor:
    """Adaptive max-pool a (B, C, H, W) map to a k×k grid (k capped at the map) → (B, C·k²).

    A k that covers the whole map returns the map itself, flattened (a view where it can).
    Otherwise the images are pooled in blocks, so that the argmax indices torch computes
    alongside (8 bytes per pooled value) stay under ``index_bytes``.
    """
    b, c, h, w = fmap.shape
    k = min(k, h, w)
    if k == h and k == w:
        return fmap.reshape(b, -1)
    out = torch.empty((b, c * k * k), dtype=fmap.dtype, device=fmap.device)
    step = max(1, index_bytes // (8 * c * k * k))
    for start in range(0, b, step):
        out[start : start + step] = F.adaptive_max_pool2d(fmap[start : start + step], k).flatten(1)
    return out


def block_maps(model: torch.nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Spatial output (B, C, H, W) of every block/stage of a timm model, shallow to deep."""
    return model.forward_intermediates(x, indices=None, output_fmt="NCHW", intermediates_only=True)


def tokens_to_map(
    out: torch.Tensor | tuple, num_prefix: int, layout: str = "BNC"
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A hooked module's output as a (B, C, H, W) map plus its prefix tokens (B, n_prefix, C).

    4-D outputs are maps already (no prefix). 3-D token outputs ((B, N, C), or (N, B, C)
    with ``layout="NBC"``) hold ``num_prefix`` tokens, then a square grid of patches.
    Tuples (e.g. output, attention weights) contribute their first element.
    """
    if isinstance(out, (tuple, list)):
        out = out[0]
    if out.ndim == 4:
        return out, None
    if out.ndim != 3:
        raise ValueError(f"expected a (B, C, H, W) map or (B, N, C) tokens, got {tuple(out.shape)}")
    if layout == "NBC":
        out = out.transpose(0, 1)
    patches = out[:, num_prefix:]
    side = math.isqrt(patches.shape[1])
    if side * side != patches.shape[1]:
        raise ValueError(
            f"{patches.shape[1]} tokens after {num_prefix} prefix tokens do not form a square grid"
        )
    fmap = patches.transpose(1, 2).reshape(out.shape[0], out.shape[2], side, side)
    return fmap, (out[:, :num_prefix] if num_prefix else None)


class _LayersDone(Exception):
    """Raised by the last hook to fire when the forward pass may stop early."""


class LayerExtractor:
    """Calls a model and returns, per chosen layer, its map and (optionally) prefix tokens.

    timm models with block indices: ``forward_intermediates`` at those blocks. Plugin
    models (registry entries with ``factory``) and timm models whose ``layers`` are
    submodule names (patterns as :func:`match_modules`): forward hooks on those submodules,
    in the model's module order per pattern, removed by :meth:`close`; a timm model's
    prefix tokens are its ``num_prefix_tokens``, a plugin's the entry's. ``stop_early``:
    the forward pass goes only as far as the deepest chosen layer (timm's ``stop_early``;
    with hooks, it stops once every chosen layer has given its output).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        spec: dict[str, Any],
        keep_prefix: bool,
        stop_early: bool = False,
    ) -> None:
        self.model, self.spec, self.keep_prefix = model, spec, keep_prefix
        self.stop_early = stop_early  # the forward pass ends once the chosen layers are out
        self._hooks: list = []
        self._outputs: dict[str, Any] = {}
        layers = spec.get("layers", "all")
        named = isinstance(layers, list) and all(isinstance(n, str) for n in layers)
        if "factory" in spec or named:
            label = spec.get("factory") or spec.get("timm")
            if not named:
                raise ValueError(f"model '{label}': a plugin model needs layers: [submodule names]")
            modules = dict(model.named_modules())
            missing = [n for n in layers if not match_modules(n, modules)]
            if missing:
                raise KeyError(f"model '{label}': no submodule named {missing}")
            names = list(dict.fromkeys(m for n in layers for m in match_modules(n, modules)))
            for layer in names:
                hook = modules[layer].register_forward_hook(self._keep(layer))
                self._hooks.append(hook)
            self.names, self.indices, self.n_layers = names, list(range(len(names))), len(names)
            self.hooked = True
            self.n_prefix = int(
                spec.get("num_prefix_tokens", 0)
                if "factory" in spec
                else getattr(model, "num_prefix_tokens", 0)
            )
        else:
            side = input_spec(model, spec).size
            device = next(model.parameters()).device
            with torch.inference_mode():
                probe = torch.zeros(1, 3, side, side, device=device)
                self.n_layers = len(block_maps(model, probe))
            self.indices = select_layers(spec.get("layers", "all"), self.n_layers)
            self.names = [f"block{i:02d}" for i in self.indices]
            self.hooked = False  # forward_intermediates, not hooks on named submodules

    def _keep(self, layer: str) -> Callable:
        def hook(_module, _inputs, output) -> None:
            self._outputs[layer] = output
            if self.stop_early and len(self._outputs) == len(self.names):
                raise _LayersDone

        return hook

    def __call__(self, x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
        if self._hooks:
            self._outputs.clear()
            try:
                self.model(x)
            except _LayersDone:
                pass
            layout = self.spec.get("token_layout", "BNC")
            out = [tokens_to_map(self._outputs[n], self.n_prefix, layout) for n in self.names]
            return [(fmap, prefix if self.keep_prefix else None) for fmap, prefix in out]
        prefix = self.keep_prefix and getattr(self.model, "num_prefix_tokens", 0) > 0
        kwargs = {"return_prefix_tokens": True} if prefix else {}
        if self.stop_early:
            kwargs["stop_early"] = True
        maps = self.model.forward_intermediates(
            x, indices=self.indices, output_fmt="NCHW", intermediates_only=True, **kwargs
        )
        return [tuple(m) if prefix else (m, None) for m in maps]

    def close(self) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks.clear()


def match_modules(pattern: str, names: Iterable[str]) -> list[str]:
    """Module names matching a dotted pattern whose parts may hold shell wildcards, part by
    part: ``encoder.layers.*`` matches ``encoder.layers.0`` but not ``encoder.layers.0.fc``."""
    parts = pattern.split(".")
    return [
        name
        for name in names
        if len(name.split(".")) == len(parts)
        and all(fnmatch.fnmatchcase(p, q) for p, q in zip(name.split("."), parts, strict=True))
    ]


def select_layers(layers: Any, n_layers: int) -> list[int]:
    """Block indices from a ``layers`` entry: "all", a list of indices (negative count from
    the end), or {"stride": s} (every s-th block, always including the last)."""
    if layers in (None, "all"):
        return list(range(n_layers))
    if isinstance(layers, dict) and set(layers) == {"stride"}:
        stride = int(layers["stride"])
        if stride < 1:
            raise ValueError(f"layers: stride must be at least 1, got {stride}")
        return sorted(set(range(n_layers - 1, -1, -stride)))
    if isinstance(layers, list) and all(isinstance(i, int) for i in layers):
        bad = [i for i in layers if not -n_layers <= i < n_layers]
        if bad:
            raise ValueError(f"layers {bad} out of range for a model with {n_layers} blocks")
        return sorted({i % n_layers for i in layers})
    raise ValueError(
        f"layers must be 'all', a list of block indices or {{stride: n}}, got {layers!r}"
    )


def preprocess(images: np.ndarray | torch.Tensor, spec: InputSpec, device: str) -> torch.Tensor:
    """uint8 (B, H, W, 3) images → normalised float (B, 3, size, size) on ``device``."""
    x = torch.as_tensor(images).to(device, non_blocking=True)
    x = x.permute(0, 3, 1, 2).float().div_(255.0)
    if x.shape[-1] != spec.size or x.shape[-2] != spec.size:
        x = F.interpolate(x, size=(spec.size, spec.size), mode="bilinear", antialias=True)
    mean = torch.tensor(spec.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(spec.std, device=device).view(1, 3, 1, 1)
    return (x - mean) / std
