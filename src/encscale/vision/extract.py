"""Feature extraction: every image of ``stimuli.h5`` through an image model, each chosen
layer's map (:mod:`encscale.vision.layers`) max-pooled to k×k grids, into the features file
(layout: :mod:`encscale.contracts`). A k larger than a layer's map would only repeat
values, so such k are capped at the map side and each distinct grid is stored once.

Writing is resumable: the file grows under ``<out>.partial`` with its progress in
``<out>.progress.json`` (written after each batch is flushed); a rerun with the same
settings continues from the last completed batch, and the file gets its final name only
when complete. Without compression the datasets are contiguous and allocated up front, so
a killed job cannot leave half-written HDF5 metadata behind.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from encscale.contracts import FeatureSet, create_features, image_dataset, update_features
from encscale.io import open_h5
from encscale.torchtools import PRECISIONS, autocast, count_parameters
from encscale.vision.layers import LayerExtractor, maxpool_tokens, preprocess
from encscale.vision.registry import InputSpec, build_model, input_spec, weights_source

log = logging.getLogger(__name__)

STORAGE = {"float32": np.float32, "float16": np.float16}


class StimulusBatches(torch.utils.data.Dataset):
    """Contiguous uint8 batches (B, H, W, 3) of ``stimuli.h5`` from image ``start`` on.

    Each DataLoader worker opens the file itself (HDF5 handles do not survive a fork).
    """

    def __init__(self, path: str | Path, batch_size: int, start: int, n: int) -> None:
        self.path, self.batch_size, self.start, self.n = str(path), batch_size, start, n
        self._h5: h5py.File | None = None
        self._images: h5py.Dataset | None = None

    def __len__(self) -> int:
        return max(0, math.ceil((self.n - self.start) / self.batch_size))

    def __getitem__(self, i: int) -> torch.Tensor:
        if self._images is None:
            self._h5 = open_h5(self.path, "stimuli")
            self._images = image_dataset(self._h5)
        lo = self.start + i * self.batch_size
        return torch.from_numpy(self._images[lo : min(lo + self.batch_size, self.n)])


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
        sets = [fs for per_layer in layout for fs in per_layer]
        create_features(
            partial, sets, n, STORAGE[storage], compression=compression, chunk_rows=batch_size
        )
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
    attrs = _file_attrs(
        name, spec, model, ispec, precision, storage, pool_sizes, extractor, prefix_tokens
    )
    with update_features(partial, attrs, provenance) as out:
        dsets = [[(out[fs.key], fs.k) for fs in per_layer] for per_layer in layout]
        rate = _Rate(name, n, done, progress)
        for images in batches:
            x = preprocess(images, ispec, device)
            with torch.inference_mode(), autocast(device, precision):
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


def _layout(
    extractor: LayerExtractor, outputs: list, pool_sizes: list[int]
) -> list[list[FeatureSet]]:
    """Per chosen layer, the feature sets to write, from one probe batch's ``outputs``."""
    layout = []
    for pos, (name, (fmap, prefix)) in enumerate(zip(extractor.names, outputs, strict=True)):
        index = extractor.indices[pos]
        channels, side = fmap.shape[1], min(fmap.shape[-2], fmap.shape[-1])
        depth = index / max(extractor.n_layers - 1, 1)
        sets = [
            FeatureSet(name, k, depth, channels * k * k, index, map_size=side)
            for k in sorted({min(k, side) for k in pool_sizes})
        ]
        if prefix is not None:
            width = prefix.shape[1] * prefix.shape[2]
            sets.append(FeatureSet(name, 0, depth, width, index, map_size=0))
        layout.append(sets)
    return layout


def _check_space(out_path: Path, n: int, layout: list[list[FeatureSet]], dtype: type) -> None:
    """Refuse, naming the sizes, when the features would not fit the free disk space."""
    need = n * sum(fs.width for sets in layout for fs in sets) * np.dtype(dtype).itemsize
    out_path.parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(out_path.parent).free
    log.info("%s: %.2f GB of features (%s)", out_path, need / 1e9, np.dtype(dtype).name)
    if need > free:
        raise OSError(
            f"{out_path}: the features need {need / 1e9:.2f} GB but {out_path.parent} has "
            f"{free / 1e9:.2f} GB free; keep fewer pool sizes or layers, or store float16"
        )


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


def _file_attrs(
    name: str,
    spec: dict[str, Any],
    model: torch.nn.Module,
    ispec: InputSpec,
    precision: str,
    storage: str,
    pool_sizes: list[int],
    extractor: LayerExtractor,
    prefix_tokens: str,
) -> dict[str, Any]:
    """The features file's attributes."""
    return dict(
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
