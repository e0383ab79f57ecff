"""Layer maps computed by the model when a fit asks for them, instead of read from a
features file (``features.store: none``).

:class:`ModelMaps` has the reading side of an open features file
(:class:`encscale.contracts.FeaturesFile`: ``model``, ``n_params``, ``n_stimuli``,
``maps``, ``fit_sets``, ``read_map``), so a subject × model fit
(:func:`encscale.encoding.subject.fit_subject_model`) runs on it unchanged. The chosen
layers are split, in depth order, into groups whose maps over the fit's images fit
``max_bytes``; the first read of a group's layer runs the model over those images once, as
far as the group's deepest layer, and keeps only that group's maps (rounded to the storage
dtype, so a map equals the one extraction would store). The model is built, fed and run
by the same functions as extraction (:mod:`encscale.vision.extract`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from encscale.contracts import (
    FeatureSet,
    LayerMap,
    group_budget,
    image_dataset,
    layer_groups,
    map_sets,
)
from encscale.io import open_h5
from encscale.torchtools import autocast
from encscale.vision.extract import (
    STORAGE,
    TORCH_STORAGE,
    check_options,
    load_model,
    probe_layout,
    to_storage,
)
from encscale.vision.layers import LayerExtractor, preprocess
from encscale.vision.registry import reported_params

log = logging.getLogger(__name__)


class ModelMaps:
    """A model's layer maps over images of ``stimuli.h5``, computed a group of layers at a
    time (module docstring); ``max_bytes`` bounds a group's maps (default: a quarter of the
    device's free memory, or 4 GiB on the CPU)."""

    def __init__(
        self,
        stimuli_path: str | Path,
        name: str,
        spec: dict[str, Any],
        *,
        batch_size: int = 32,
        device: str = "cpu",
        precision: str = "fp32",
        storage: str = "float32",
        pixel_norm: str = "model",
        prefix_tokens: str = "drop",
        offline: bool = False,
        max_bytes: int | None = None,
        progress: Callable[[str], None] = log.info,
    ) -> None:
        check_options(precision, storage, pixel_norm)
        if prefix_tokens not in ("drop", "keep"):
            raise ValueError(f"prefix_tokens must be 'drop' or 'keep', got {prefix_tokens!r}")
        self.stimuli_path, self.spec = str(stimuli_path), spec
        self.batch_size, self.device, self.precision = batch_size, device, precision
        self.dtype, self.itemsize = TORCH_STORAGE[storage], np.dtype(STORAGE[storage]).itemsize
        self.progress = progress
        self.net, self.ispec = load_model(spec, name, device, pixel_norm, offline)
        self.keep_prefix = prefix_tokens == "keep"
        extractor = LayerExtractor(self.net, spec, keep_prefix=self.keep_prefix)
        layout = probe_layout(extractor, self.ispec, device)
        self.maps = [lm for lm, _ in layout]
        self._prefix = {lm.layer: fs for lm, fs in layout if fs is not None}
        self._indices = dict(zip(extractor.names, extractor.indices, strict=True))
        self._named = extractor.hooked
        extractor.close()
        with open_h5(stimuli_path, "stimuli") as stim:
            self.n_stimuli = image_dataset(stim).shape[0]
        self.model, self.path = name, f"{name} (run over {stimuli_path})"
        self.n_params = reported_params(spec, self.net)
        self.max_bytes = max_bytes or group_budget(None, _free_memory(device))
        self.passes = 0  # forward passes over the fit's images, one per group
        self._rows: np.ndarray | None = None
        self._held: dict[str, torch.Tensor] = {}

    def fit_sets(self, pool_sizes: Sequence[int] | str) -> list[FeatureSet]:
        """The sets a fit chooses from: per layer in depth order, its prefix tokens' set
        (``prefix_tokens`` keep), then its map pooled to each k (a features file's order)."""
        return [
            fs
            for lm in self.maps
            for fs in ([self._prefix[lm.layer]] if lm.layer in self._prefix else [])
            + map_sets(lm, pool_sizes)
        ]

    def read_rows(self, fs: FeatureSet, rows: np.ndarray) -> torch.Tensor:
        """A layer's prefix-token set over ``rows`` (N' × width) as float32 on the device:
        computed with its layer's group on first use, as :meth:`read_map`."""
        return self._group_of(self._layer_map(fs.layer), rows)[f"{fs.layer}/prefix"].float()

    def read_map(
        self, lm: LayerMap, rows: np.ndarray, channels: slice = slice(None)
    ) -> torch.Tensor:
        """The layer's map over ``rows`` (N'), ``channels`` sliced, as float32 on the device
        (N' × c × h × w): computed with its group on first use, the previous group freed."""
        return self._group_of(lm, rows)[lm.layer][:, channels].float()

    def _layer_map(self, layer: str) -> LayerMap:
        return next(lm for lm in self.maps if lm.layer == layer)

    def _group_of(self, lm: LayerMap, rows: np.ndarray) -> dict[str, torch.Tensor]:
        """The held outputs of ``lm``'s group over ``rows``, run now unless already held."""
        rows = np.asarray(rows)
        if self._rows is None or not np.array_equal(rows, self._rows) or lm.layer not in self._held:
            self._held = {}
            group = next(g for g in self.groups(rows.size) if lm in g)
            self._held, self._rows = self._run(group, rows), rows
        return self._held

    def groups(self, n_rows: int) -> list[list[LayerMap]]:
        """The layer groups of a fit over ``n_rows`` images."""
        sizes = [
            n_rows * self.itemsize * (lm.channels * lm.height * lm.width + self._prefix_width(lm))
            for lm in self.maps
        ]
        return [[self.maps[i] for i in g] for g in layer_groups(sizes, self.max_bytes)]

    def _prefix_width(self, lm: LayerMap) -> int:
        return self._prefix[lm.layer].width if lm.layer in self._prefix else 0

    def group_ends(self, n_rows: int) -> set[str]:
        """The deepest layer of each group: after its sets, a fit may save its progress."""
        return {group[-1].layer for group in self.groups(n_rows)}

    def _run(self, group: Sequence[LayerMap], rows: np.ndarray) -> dict[str, torch.Tensor]:
        """The group's maps over ``rows``: the model run once, as far as its deepest layer."""
        layers = [lm.layer if self._named else self._indices[lm.layer] for lm in group]
        extractor = LayerExtractor(
            self.net, dict(self.spec, layers=layers), self.keep_prefix, stop_early=True
        )
        n = rows.size
        held = {
            lm.layer: torch.empty(
                (n, lm.channels, lm.height, lm.width), dtype=self.dtype, device=self.device
            )
            for lm in group
        }
        for lm in group:
            if lm.layer in self._prefix:
                width = self._prefix[lm.layer].width
                held[f"{lm.layer}/prefix"] = torch.empty(
                    (n, width), dtype=self.dtype, device=self.device
                )
        order = np.argsort(rows, kind="stable")  # HDF5 reads rows in increasing order
        with open_h5(self.stimuli_path, "stimuli") as stim:
            images = image_dataset(stim)
            for start in range(0, n, self.batch_size):
                pos = order[start : start + self.batch_size]
                x = preprocess(images[rows[pos]], self.ispec, self.device)
                with torch.inference_mode(), autocast(self.device, self.precision):
                    outputs = extractor(x)
                where = torch.as_tensor(pos, device=self.device)
                for lm, (fmap, prefix) in zip(group, outputs, strict=True):
                    held[lm.layer][where] = to_storage(fmap, self.dtype)
                    if prefix is not None:
                        held[f"{lm.layer}/prefix"][where] = to_storage(
                            prefix.flatten(1), self.dtype
                        )
        extractor.close()
        self.passes += 1
        self.progress(
            f"{self.model}: layers {group[0].layer} … {group[-1].layer} over {n} images "
            f"(forward pass {self.passes})"
        )
        return held

    def close(self) -> None:
        """Free the maps held."""
        self._held, self._rows = {}, None


def _free_memory(device: str) -> float:
    """The device's free memory in bytes; inf on the CPU (not bounded here)."""
    if torch.device(device).type == "cuda":
        return torch.cuda.mem_get_info(torch.device(device))[0]
    return math.inf


def model_maps_from_config(stimuli_path: str | Path, params: dict[str, Any]) -> ModelMaps:
    """:class:`ModelMaps` as a store-none fit job gets it: ``params`` the model's ``name`` and
    registry ``spec``, the fit's ``device``, and the ``features`` config's ``batch_size``,
    ``precision``, ``storage``, ``pixel_norm``, ``prefix_tokens``, ``offline`` and
    ``group_memory_mb``."""
    group_mb = params.get("group_memory_mb")
    return ModelMaps(
        stimuli_path,
        params["name"],
        params["spec"],
        batch_size=params["batch_size"],
        device=params["device"],
        precision=params["precision"],
        storage=params["storage"],
        pixel_norm=params["pixel_norm"],
        prefix_tokens=params.get("prefix_tokens", "drop"),
        offline=params["offline"],
        max_bytes=group_mb * 2**20 if group_mb else None,
    )
