"""Feature extraction: every block's spatial map, max-pooled to k×k grids, into HDF5.

File layout of ``features/{model}.h5`` (rows follow ``stimuli.h5``):

- ``layers/<layer>/k<k>``: float32 (n_stimuli × channels·k²), chunked along stimuli; attrs
  ``layer_index``, ``depth`` (layer index / (n_layers − 1)), ``k``, ``map_size``. A k larger
  than the layer's map would only repeat values, so such k are capped at the map side and
  each distinct grid is stored once.
- file attrs: ``model``, ``timm``, ``n_params``, ``weights``, ``precision``, ``input_size``,
  ``pool_sizes``, ``layers`` (names in depth order), ``prefix_tokens`` ("dropped").

Prefix (class/register) tokens of transformers are dropped: only patch tokens, put back on
their spatial grid by timm's ``forward_intermediates(output_fmt="NCHW")``, are pooled.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
import torch.nn.functional as F

from encscale.io import atomic_path, open_h5
from encscale.models import InputSpec, build_model, count_parameters, input_spec, weights_source

log = logging.getLogger(__name__)

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def maxpool_tokens(fmap: torch.Tensor, k: int) -> torch.Tensor:
    """Adaptive max-pool a (B, C, H, W) map to a k×k grid (k capped at the map) → (B, C·k²)."""
    k = min(k, fmap.shape[-2], fmap.shape[-1])
    return F.adaptive_max_pool2d(fmap, k).flatten(1)


def block_maps(model: torch.nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Spatial output (B, C, H, W) of every block/stage of a timm model, shallow to deep."""
    return model.forward_intermediates(x, indices=None, output_fmt="NCHW", intermediates_only=True)


def preprocess(images: np.ndarray, spec: InputSpec, device: str) -> torch.Tensor:
    """uint8 (B, H, W, 3) images → normalised float (B, 3, size, size) on ``device``."""
    x = torch.from_numpy(images).to(device).permute(0, 3, 1, 2).float().div_(255.0)
    if x.shape[-1] != spec.size or x.shape[-2] != spec.size:
        x = F.interpolate(x, size=(spec.size, spec.size), mode="bilinear", antialias=True)
    mean = torch.tensor(spec.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(spec.std, device=device).view(1, 3, 1, 1)
    return (x - mean) / std


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
    progress: Callable[[str], None] = log.info,
) -> None:
    """Run every image of ``stimuli.h5`` through the model and write pooled features to HDF5."""
    model = build_model(spec).to(device)
    ispec = input_spec(model, spec)
    dtype = PRECISIONS[precision]
    with open_h5(stimuli_path, "stimuli") as stim, atomic_path(out_path) as tmp:
        images = image_dataset(stim)
        n = images.shape[0]
        with h5py.File(tmp, "w") as out:
            _write_attrs(out, name, spec, model, ispec, precision, pool_sizes)
            datasets: list[list[h5py.Dataset]] = []
            start = time.perf_counter()
            for lo in range(0, n, batch_size):
                x = preprocess(images[lo : lo + batch_size], ispec, device)
                with (
                    torch.inference_mode(),
                    torch.autocast(
                        device_type=torch.device(device).type,
                        dtype=dtype,
                        enabled=precision != "fp32",
                    ),
                ):
                    maps = block_maps(model, x)
                if not datasets:
                    datasets = _create_datasets(out, maps, pool_sizes, n, batch_size)
                for fmap, per_k in zip(maps, datasets, strict=True):
                    for dset in per_k:
                        pooled = maxpool_tokens(fmap.float(), int(dset.attrs["k"]))
                        dset[lo : lo + len(x)] = pooled.cpu().numpy()
                done = min(lo + batch_size, n)
                rate = done / (time.perf_counter() - start)
                progress(f"{name}: {done}/{n} images ({rate:.1f} images/s)")


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


def _write_attrs(out, name, spec, model, ispec, precision, pool_sizes) -> None:
    out.attrs.update(
        model=name,
        timm=spec["timm"],
        n_params=count_parameters(model),
        weights=weights_source(spec),
        precision=precision,
        input_size=ispec.size,
        pool_sizes=np.asarray(pool_sizes, dtype=np.int64),
        prefix_tokens="dropped",
        spec=json.dumps(spec, sort_keys=True),
    )


def _create_datasets(out, maps, pool_sizes, n, batch_size) -> list[list[h5py.Dataset]]:
    names = [f"block{i:02d}" for i in range(len(maps))]
    out.attrs["layers"] = names
    datasets = []
    for i, (layer, fmap) in enumerate(zip(names, maps, strict=True)):
        per_k = []
        side = min(fmap.shape[-2], fmap.shape[-1])
        for k in sorted({min(k, side) for k in pool_sizes}):
            width = fmap.shape[1] * k * k
            dset = out.create_dataset(
                f"layers/{layer}/k{k}",
                shape=(n, width),
                dtype=np.float32,
                chunks=(min(n, max(batch_size, 1)), width),
            )
            dset.attrs.update(
                layer_index=i,
                depth=i / max(len(maps) - 1, 1),
                k=k,
                map_size=fmap.shape[-1],
            )
            per_k.append(dset)
        datasets.append(per_k)
    return datasets


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
