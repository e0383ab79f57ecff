"""Feature extraction: every image of ``stimuli.h5`` through an image model, each chosen
layer's spatial map (:mod:`encscale.vision.layers`) and, if kept, its prefix tokens, into
the features file (layout: :mod:`encscale.contracts`).

The maps are stored as they are and max-pooled to k×k grids at fit time (encoding's
``pool_sizes``), so any k can be tried without extracting again; they are also smaller:
the pooled sets for k = 1 … 16 of a 16×16 map hold 1² + 2² + … + 16² = 1,496 values per
channel, the map itself 256. Max-pooling commutes with the rounding to the storage dtype,
so a grid pooled from the stored map equals the one pooled before storing, exactly.

Writing is resumable: the file grows under ``<out>.partial`` with its progress in
``<out>.progress.json`` (written after each batch is flushed); a rerun with the same
settings continues from the last completed batch, and the file gets its final name only
when complete. Without compression the datasets are contiguous and allocated up front, so
a killed job cannot leave half-written HDF5 metadata behind.
"""

from __future__ import annotations

import dataclasses
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

from encscale.contracts import (
    FeatureSet,
    LayerMap,
    create_features,
    image_dataset,
    update_features,
)
from encscale.io import file_identity, open_h5, read_h5
from encscale.jobs import progress as progress_bar
from encscale.torchtools import PRECISIONS, autocast, count_parameters
from encscale.vision.layers import LayerExtractor, preprocess
from encscale.vision.registry import (
    InputSpec,
    build_model,
    input_spec,
    reported_params,
    weights_source,
)

log = logging.getLogger(__name__)

STORAGE = {"float32": np.float32, "float16": np.float16}
PIXEL_NORMS = ("model", "none")  # the model's mean/std, or [0, 1] pixels (the first study)
TORCH_STORAGE = {"float32": torch.float32, "float16": torch.float16}
# Per chosen layer: its map and, when prefix tokens are kept, their set.
Layout = list[tuple[LayerMap, FeatureSet | None]]


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
    *,
    batch_size: int = 32,
    device: str = "cpu",
    precision: str = "fp32",
    storage: str = "float32",
    compression: str | None = None,
    prefix_tokens: str = "drop",
    pixel_norm: str = "model",
    num_workers: int = 0,
    offline: bool = False,
    provenance: Mapping[str, Any] | None = None,
    progress: Callable[[str], None] = log.info,
) -> float:
    """Run every image of ``stimuli.h5`` through the model and write each chosen layer's map
    (and prefix tokens) to HDF5.

    ``precision``: the model's compute dtype (autocast; fp32 on CPU is exact), recorded in
    the file; ``storage``: float32 or float16 on disk; ``compression``: None (contiguous,
    fastest) or an h5py filter ("gzip", "lzf"); ``prefix_tokens``: "drop" or "keep";
    ``pixel_norm``: "model" (pixels normalised with the model's mean and std) or "none"
    ([0, 1] pixels, as the first study's code fed its models); ``num_workers``: DataLoader
    processes reading ``stimuli.h5``. Resumes an interrupted
    run with the same settings (see the module docstring); ``provenance``
    (:func:`encscale.provenance.job_provenance`) is recorded. Returns the images per second
    of the extraction loop (reading, model and writing; set-up excluded).
    """
    check_options(precision, storage, pixel_norm)
    if prefix_tokens not in ("drop", "keep"):
        raise ValueError(f"prefix_tokens must be 'drop' or 'keep', got {prefix_tokens!r}")
    out_path = Path(out_path)
    model, ispec = load_model(spec, name, device, pixel_norm, offline)
    extractor = LayerExtractor(model, spec, keep_prefix=prefix_tokens == "keep")
    with open_h5(stimuli_path, "stimuli") as stim:
        n = image_dataset(stim).shape[0]
    settings = dict(
        spec=spec,
        batch_size=batch_size,
        precision=precision,
        storage=storage,
        compression=compression,
        prefix_tokens=prefix_tokens,
        pixel_norm=pixel_norm,
        stimuli=file_identity(stimuli_path),
    )
    signature = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()
    layout = probe_layout(extractor, ispec, device)
    partial = out_path.with_name(out_path.name + ".partial")
    state = out_path.with_name(out_path.name + ".progress.json")
    done = _resume_point(partial, state, signature)
    if done is None:
        _check_space(out_path, n, layout, STORAGE[storage])
        maps = [lm for lm, _ in layout]
        sets = [fs for _, fs in layout if fs is not None]
        create_features(
            partial,
            sets,
            n,
            STORAGE[storage],
            maps=maps,
            compression=compression,
            chunk_rows=batch_size,
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
    attrs = _file_attrs(name, spec, model, ispec, precision, storage, extractor, prefix_tokens)
    dtype = TORCH_STORAGE[storage]
    bar = progress_bar(total=n, initial=done, desc=name, unit="images", write=progress)
    start, t0 = done, time.perf_counter()
    with update_features(partial, attrs, provenance) as out, bar:
        dsets = [(out[lm.key], out[fs.key] if fs else None) for lm, fs in layout]
        for images in batches:
            x = preprocess(images, ispec, device)
            with torch.inference_mode(), autocast(device, precision):
                outputs = extractor(x)
            for (fmap, prefix), (map_dset, prefix_dset) in zip(outputs, dsets, strict=True):
                map_dset[done : done + len(x)] = _to_storage(fmap, dtype)
                if prefix_dset is not None:
                    prefix_dset[done : done + len(x)] = _to_storage(prefix.flatten(1), dtype)
            done += len(x)
            out.flush()
            _write_progress(state, signature, done)
            bar.update(len(x))
    seconds = time.perf_counter() - t0
    extractor.close()
    os.replace(partial, out_path)
    state.unlink(missing_ok=True)
    return (done - start) / max(seconds, 1e-9)


def check_options(precision: str, storage: str, pixel_norm: str) -> None:
    """A ValueError naming an unknown precision, storage dtype or pixel normalisation."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
    if storage not in STORAGE:
        raise ValueError(f"storage must be one of {sorted(STORAGE)}, got {storage!r}")
    if pixel_norm not in PIXEL_NORMS:
        raise ValueError(f"pixel_norm must be one of {PIXEL_NORMS}, got {pixel_norm!r}")


def load_model(
    spec: dict[str, Any], name: str, device: str, pixel_norm: str, offline: bool
) -> tuple[torch.nn.Module, InputSpec]:
    """The registry entry's model on ``device`` and how its images are fed (``pixel_norm``
    "none": [0, 1] pixels), as extraction and the fits that run the model both use."""
    model = build_model(spec, name, offline=offline).to(device)
    ispec = input_spec(model, spec)
    if pixel_norm == "none":
        ispec = dataclasses.replace(ispec, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    return model, ispec


def probe_layout(extractor: LayerExtractor, ispec: InputSpec, device: str) -> Layout:
    """Per chosen layer, its map and prefix set, from one blank image through the model."""
    probe = np.zeros((1, ispec.size, ispec.size, 3), np.uint8)
    with torch.inference_mode():
        return _layout(extractor, extractor(preprocess(probe, ispec, device)))


def to_storage(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``x`` rounded to the storage dtype, on its device, contiguous."""
    return x.to(dtype).contiguous()


def _to_storage(x: torch.Tensor, dtype: torch.dtype) -> np.ndarray:
    """``x`` rounded to the storage dtype on its device, then as a C-contiguous array."""
    return to_storage(x, dtype).cpu().numpy()


def _layout(extractor: LayerExtractor, outputs: list) -> Layout:
    """Per chosen layer, its map (B, C, h, w) and prefix set, from one probe batch's
    ``outputs``."""
    layout: Layout = []
    for pos, (name, (fmap, prefix)) in enumerate(zip(extractor.names, outputs, strict=True)):
        index = extractor.indices[pos]
        depth = index / max(extractor.n_layers - 1, 1)
        channels, height, width = (int(s) for s in fmap.shape[1:])
        lm = LayerMap(name, depth, index, channels, height, width)
        fs = None
        if prefix is not None:
            fs = FeatureSet(name, 0, depth, prefix.shape[1] * prefix.shape[2], index, map_size=0)
        layout.append((lm, fs))
    return layout


def _bytes_per_image(layout: Layout, dtype: type) -> int:
    """Values of every map (C·h·w) and prefix set (width), in bytes of ``dtype``."""
    values = sum(lm.channels * lm.height * lm.width + (fs.width if fs else 0) for lm, fs in layout)
    return values * np.dtype(dtype).itemsize


def _check_space(out_path: Path, n: int, layout: Layout, dtype: type) -> None:
    """Refuse, naming the sizes, when the features would not fit the free disk space."""
    need = n * _bytes_per_image(layout, dtype)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(out_path.parent).free
    log.info("%s: %.2f GB of features (%s)", out_path, need / 1e9, np.dtype(dtype).name)
    if need > free:
        raise OSError(
            f"{out_path}: the features need {need / 1e9:.2f} GB but {out_path.parent} has "
            f"{free / 1e9:.2f} GB free; keep fewer layers, or store float16"
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
        with read_h5(partial):
            pass
    except (OSError, ValueError) as err:
        log.warning("%s: cannot resume (%s); starting over", partial, err)
        return None
    if saved.get("signature") != signature:
        log.info("%s: settings changed since the interrupted run; starting over", partial)
        return None
    return int(saved["done"])


def _file_attrs(
    name: str,
    spec: dict[str, Any],
    model: torch.nn.Module,
    ispec: InputSpec,
    precision: str,
    storage: str,
    extractor: LayerExtractor,
    prefix_tokens: str,
) -> dict[str, Any]:
    """The features file's attributes: ``n_params`` is the entry's ``n_params`` where it
    gives one (the count a study reports, e.g. a vision branch inside a multimodal
    wrapper), else the instantiated model's count, which ``n_params_counted`` always holds."""
    counted = count_parameters(model)
    return dict(
        model=name,
        source=spec.get("timm") or spec.get("factory"),
        n_params=reported_params(spec, model),
        n_params_counted=counted,
        weights=weights_source(spec),
        precision=precision,
        storage=storage,
        input_size=ispec.size,
        mean=list(ispec.mean),
        std=list(ispec.std),
        layers=extractor.names,
        prefix_tokens=prefix_tokens,
        spec=json.dumps(spec, sort_keys=True),
    )
