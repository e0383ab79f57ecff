"""Feature extraction: every chosen layer's spatial map, max-pooled to k×k grids, into HDF5.

File layout of ``features/{model}.h5`` (rows follow ``stimuli.h5``):

- ``layers/<layer>/k<k>``: (n_stimuli × channels·k²) in the storage dtype (float32 or
  float16); attrs ``layer_index``, ``depth`` (layer index / (number of layers − 1)), ``k``,
  ``map_size``. A k larger than the layer's map would only repeat values, so such k are
  capped at the map side and each distinct grid is stored once.
- ``layers/<layer>/prefix`` (``prefix_tokens: keep``): the class/register tokens of that
  layer, (n_stimuli × n_prefix·channels), attr ``k`` = 0.
- file attrs: ``model``, ``source``, ``n_params``, ``weights``, ``precision``, ``storage``,
  ``input_size``, ``pool_sizes``, ``layers`` (names in depth order), ``prefix_tokens``,
  ``spec`` (the registry entry as JSON).

Layers are a timm model's blocks/stages (``forward_intermediates``, which puts a
transformer's patch tokens back on their grid and splits off its prefix tokens) or, for a
plugin model, the outputs of named submodules (forward hooks, removed after use).

Writing is resumable: the file grows under ``<out>.partial`` with its progress in
``<out>.progress.json`` (written after each batch is flushed); a rerun with the same
settings continues from the last completed batch, and the file gets its final name only
when complete. Without compression the datasets are contiguous and allocated up front, so
a killed job cannot leave half-written HDF5 metadata behind.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
import torch.nn.functional as F

from encscale.io import open_h5
from encscale.provenance import write_provenance
from encscale.vision.registry import (
    InputSpec,
    build_model,
    count_parameters,
    input_spec,
    weights_source,
)

log = logging.getLogger(__name__)

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
STORAGE = {"float32": np.float32, "float16": np.float16}


def maxpool_tokens(fmap: torch.Tensor, k: int) -> torch.Tensor:
    """Adaptive max-pool a (B, C, H, W) map to a k×k grid (k capped at the map) → (B, C·k²)."""
    k = min(k, fmap.shape[-2], fmap.shape[-1])
    return F.adaptive_max_pool2d(fmap, k).flatten(1)


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


class LayerExtractor:
    """Calls a model and returns, per chosen layer, its map and (optionally) prefix tokens.

    timm models: ``forward_intermediates`` at the chosen block indices. Plugin models
    (registry entries with ``factory``): forward hooks on the named submodules, removed by
    :meth:`close`.
    """

    def __init__(self, model: torch.nn.Module, spec: dict[str, Any], keep_prefix: bool) -> None:
        self.model, self.spec, self.keep_prefix = model, spec, keep_prefix
        self._hooks: list = []
        self._outputs: dict[str, Any] = {}
        if "factory" in spec:
            names = spec.get("layers")
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise ValueError(
                    f"model '{spec['factory']}': a plugin model needs layers: [submodule names]"
                )
            modules = dict(model.named_modules())
            missing = [n for n in names if not match_modules(n, modules)]
            if missing:
                raise KeyError(f"model '{spec['factory']}': no submodule named {missing}")
            names = list(dict.fromkeys(m for n in names for m in match_modules(n, modules)))
            for layer in names:
                hook = modules[layer].register_forward_hook(self._keep(layer))
                self._hooks.append(hook)
            self.names, self.indices, self.n_layers = (
                list(names),
                list(range(len(names))),
                len(names),
            )
        else:
            side = input_spec(model, spec).size
            device = next(model.parameters()).device
            with torch.inference_mode():
                probe = torch.zeros(1, 3, side, side, device=device)
                self.n_layers = len(block_maps(model, probe))
            self.indices = select_layers(spec.get("layers", "all"), self.n_layers)
            self.names = [f"block{i:02d}" for i in self.indices]

    def _keep(self, layer: str) -> Callable:
        def hook(_module, _inputs, output) -> None:
            self._outputs[layer] = output

        return hook

    def __call__(self, x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
        if self._hooks:
            self._outputs.clear()
            self.model(x)
            n_prefix = int(self.spec.get("num_prefix_tokens", 0))
            layout = self.spec.get("token_layout", "BNC")
            out = [tokens_to_map(self._outputs[n], n_prefix, layout) for n in self.names]
            return [(fmap, prefix if self.keep_prefix else None) for fmap, prefix in out]
        prefix = self.keep_prefix and getattr(self.model, "num_prefix_tokens", 0) > 0
        kwargs = {"return_prefix_tokens": True} if prefix else {}
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


class StimulusBatches(torch.utils.data.Dataset):
    """Contiguous uint8 batches (B, H, W, 3) of ``stimuli.h5`` from image ``start`` on.

    Each DataLoader worker opens the file itself (HDF5 handles do not survive a fork).
    """

    def __init__(self, path: str | Path, batch_size: int, start: int, n: int) -> None:
        self.path, self.batch_size, self.start, self.n = str(path), batch_size, start, n
        self._h5: h5py.File | None = None

    def __len__(self) -> int:
        return max(0, math.ceil((self.n - self.start) / self.batch_size))

    def __getitem__(self, i: int) -> torch.Tensor:
        if self._h5 is None:
            self._h5 = h5py.File(self.path, "r")
        lo = self.start + i * self.batch_size
        return torch.from_numpy(self._h5["images"][lo : min(lo + self.batch_size, self.n)])


def extract_features(
    stimuli_path: str | Path,
    out_path: str | Path,
    name: str,
    spec: dict[str, Any],
    pool_sizes: list[int],
    *,
    batch_size: int = 32,
    device: str = "cpu",
    precision: str = "fp32",
    storage: str = "float32",
    compression: str | None = None,
    prefix_tokens: str = "drop",
    num_workers: int = 0,
    offline: bool = False,
    provenance: Mapping[str, Any] | None = None,
    progress: Callable[[str], None] = log.info,
) -> float:
    """Run every image of ``stimuli.h5`` through the model and write pooled features to HDF5.

    ``precision``: the model's compute dtype (autocast; fp32 on CPU is exact), recorded in
    the file; ``storage``: float32 or float16 on disk; ``compression``: None (contiguous,
    fastest) or an h5py filter ("gzip", "lzf"); ``prefix_tokens``: "drop" or "keep";
    ``num_workers``: DataLoader processes reading ``stimuli.h5``. Resumes an interrupted
    run with the same settings (see the module docstring); ``provenance``
    (:func:`encscale.provenance.job_provenance`) is recorded. Returns the images per second
    of the extraction loop (reading, model, pooling and writing; set-up excluded).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
    if storage not in STORAGE:
        raise ValueError(f"storage must be one of {sorted(STORAGE)}, got {storage!r}")
    if prefix_tokens not in ("drop", "keep"):
        raise ValueError(f"prefix_tokens must be 'drop' or 'keep', got {prefix_tokens!r}")
    out_path = Path(out_path)
    model = build_model(spec, name, offline=offline).to(device)
    ispec = input_spec(model, spec)
    extractor = LayerExtractor(model, spec, keep_prefix=prefix_tokens == "keep")
    with open_h5(stimuli_path, "stimuli") as stim:
        n = image_dataset(stim).shape[0]
    settings = dict(
        spec=spec,
        pool_sizes=list(pool_sizes),
        batch_size=batch_size,
        precision=precision,
        storage=storage,
        compression=compression,
        prefix_tokens=prefix_tokens,
        stimuli=_file_identity(stimuli_path),
    )
    signature = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()
    probe = np.zeros((1, ispec.size, ispec.size, 3), np.uint8)
    with torch.inference_mode():
        layout = _layout(extractor, extractor(preprocess(probe, ispec, device)), pool_sizes)
    partial = out_path.with_name(out_path.name + ".partial")
    state = out_path.with_name(out_path.name + ".progress.json")
    done = _resume_point(partial, state, signature)
    if done is None:
        _check_space(out_path, n, layout, STORAGE[storage])
        _create_file(partial, layout, n, STORAGE[storage], compression, batch_size)
        _write_progress(state, signature, 0)
        done = 0
    else:
        progress(f"{name}: resuming at image {done}/{n} from {partial}")
    loader = torch.utils.data.DataLoader(
        StimulusBatches(stimuli_path, batch_size, done, n),
        batch_size=None,
        num_workers=num_workers,
        pin_memory=torch.device(device).type == "cuda",
    )
    batches = iter(loader)  # workers start before the output is open: they hold no lock on it
    autocast = torch.autocast(
        device_type=torch.device(device).type,
        dtype=PRECISIONS[precision],
        enabled=precision != "fp32",
    )
    with h5py.File(partial, "r+") as out:
        _write_attrs(
            out, name, spec, model, ispec, precision, storage, pool_sizes, extractor, prefix_tokens
        )
        if provenance is not None:
            write_provenance(out, provenance)
        dsets = [[(out[t.key], t.k) for t in targets] for targets in layout]
        rate = _Rate(name, n, done, progress)
        for images in batches:
            x = preprocess(images, ispec, device)
            with torch.inference_mode(), autocast:
                outputs = extractor(x)
            for (fmap, prefix), per_layer in zip(outputs, dsets, strict=True):
                for dset, k in per_layer:
                    feats = prefix.flatten(1) if k == 0 else maxpool_tokens(fmap, k)
                    dset[done : done + len(x)] = feats.float().cpu().numpy().astype(dset.dtype)
            done += len(x)
            out.flush()
            _write_progress(state, signature, done)
            rate.update(done)
    extractor.close()
    os.replace(partial, out_path)
    state.unlink(missing_ok=True)
    return rate.images_per_second(done)


def _file_identity(path: str | Path) -> list[int]:
    stat = os.stat(path)
    return [stat.st_size, stat.st_mtime_ns]


@dataclass(frozen=True)
class Target:
    """One dataset of the features file: its key, k (0: prefix tokens), width and attrs."""

    key: str
    k: int
    width: int
    attrs: dict[str, Any]


def _layout(extractor: LayerExtractor, outputs: list, pool_sizes: list[int]) -> list[list[Target]]:
    """Per chosen layer, the datasets to write, from one probe batch's ``outputs``."""
    layout = []
    for pos, (name, (fmap, prefix)) in enumerate(zip(extractor.names, outputs, strict=True)):
        index = extractor.indices[pos]
        channels, side = fmap.shape[1], min(fmap.shape[-2], fmap.shape[-1])
        common = dict(layer_index=index, depth=index / max(extractor.n_layers - 1, 1))
        targets = [
            Target(f"layers/{name}/k{k}", k, channels * k * k, dict(common, k=k, map_size=side))
            for k in sorted({min(k, side) for k in pool_sizes})
        ]
        if prefix is not None:
            width = prefix.shape[1] * prefix.shape[2]
            targets.append(Target(f"layers/{name}/prefix", 0, width, dict(common, k=0, map_size=0)))
        layout.append(targets)
    return layout


def _check_space(out_path: Path, n: int, layout: list[list[Target]], dtype: type) -> None:
    """Refuse, naming the sizes, when the features would not fit the free disk space."""
    need = n * sum(t.width for targets in layout for t in targets) * np.dtype(dtype).itemsize
    out_path.parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(out_path.parent).free
    log.info("%s: %.2f GB of features (%s)", out_path, need / 1e9, np.dtype(dtype).name)
    if need > free:
        raise OSError(
            f"{out_path}: the features need {need / 1e9:.2f} GB but {out_path.parent} has "
            f"{free / 1e9:.2f} GB free; keep fewer pool sizes or layers, or store float16"
        )


def _create_file(
    path: Path,
    layout: list[list[Target]],
    n: int,
    dtype: type,
    compression: str | None,
    batch_size: int,
) -> None:
    """Create every dataset of the (partial) features file, its storage allocated up front."""
    with h5py.File(path, "w", track_order=True) as out:
        for targets in layout:
            for t in targets:
                chunks = (min(n, batch_size), t.width) if compression else None
                dset = out.create_dataset(
                    t.key,
                    (n, t.width),
                    dtype=dtype,
                    chunks=chunks,
                    compression=compression,
                    track_times=False,
                )
                dset.attrs.update(t.attrs)
                if not compression:
                    dset[0] = 0  # a contiguous dataset is allocated whole at its first write


def _write_progress(path: Path, signature: str, done: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"signature": signature, "done": done}))
    os.replace(tmp, path)


def _resume_point(partial: Path, state: Path, signature: str) -> int | None:
    """Images already written by an interrupted run with the same settings, else None."""
    if not (partial.exists() and state.exists()):
        return None
    try:
        saved = json.loads(state.read_text())
        with h5py.File(partial, "r"):
            pass
    except (OSError, ValueError) as err:
        log.warning("%s: cannot resume (%s); starting over", partial, err)
        return None
    if saved.get("signature") != signature:
        log.info("%s: settings changed since the interrupted run; starting over", partial)
        return None
    return int(saved["done"])


class _Rate:
    """Logs progress with images/s and the remaining time, at most every 2 s and at the end."""

    def __init__(self, name: str, n: int, start: int, progress: Callable[[str], None]) -> None:
        self.name, self.n, self.start, self.progress = name, n, start, progress
        self.t0 = self.last = time.perf_counter()

    def images_per_second(self, done: int) -> float:
        return (done - self.start) / max(time.perf_counter() - self.t0, 1e-9)

    def update(self, done: int) -> None:
        now = time.perf_counter()
        if done < self.n and now - self.last < 2.0:
            return
        self.last = now
        rate = self.images_per_second(done)
        eta = (self.n - done) / rate if rate > 0 else float("inf")
        self.progress(
            f"{self.name}: {done}/{self.n} images ({rate:.1f} images/s, {eta:.0f} s left)"
        )


def image_dataset(stim: h5py.File) -> h5py.Dataset:
    """The (N, H, W, 3) uint8 ``images`` dataset of an open ``stimuli.h5``, checked."""
    if "images" not in stim:
        raise KeyError(f"{stim.filename}: dataset 'images' is missing")
    images = stim["images"]
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(
            f"{stim.filename}: 'images' is {images.dtype} {images.shape}, "
            "expected uint8 (N, H, W, 3)"
        )
    return images


def _write_attrs(
    out: h5py.File,
    name: str,
    spec: dict[str, Any],
    model: torch.nn.Module,
    ispec: InputSpec,
    precision: str,
    storage: str,
    pool_sizes: list[int],
    extractor: LayerExtractor,
    prefix_tokens: str,
) -> None:
    out.attrs.update(
        model=name,
        source=spec.get("timm") or spec.get("factory"),
        n_params=count_parameters(model),
        weights=weights_source(spec),
        precision=precision,
        storage=storage,
        input_size=ispec.size,
        pool_sizes=np.asarray(pool_sizes, dtype=np.int64),
        layers=extractor.names,
        prefix_tokens=prefix_tokens,
        spec=json.dumps(spec, sort_keys=True),
    )


def feature_sets(path: str | Path) -> list[dict[str, Any]]:
    """The feature sets of a features file, in depth order then k: key, layer, k, depth, width."""
    with open_h5(path, "features") as h5:
        if "layers" not in h5:
            raise KeyError(f"{path}: group 'layers' is missing")
        sets = []
        for layer in h5.attrs["layers"]:
            group = h5["layers"].get(str(layer))
            if group is None:
                raise KeyError(f"{path}: group 'layers/{layer}' is missing")
            for d in sorted(group.values(), key=lambda d: int(d.attrs["k"])):
                k = int(d.attrs["k"])
                key = d.name.lstrip("/")
                sets.append(
                    dict(
                        key=key,
                        layer=str(layer),
                        k=int(k),
                        depth=float(d.attrs["depth"]),
                        width=int(d.shape[1]),
                    )
                )
    return sets
