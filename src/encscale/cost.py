"""What an image study's config will cost before it runs, per rule: jobs, disk written, bytes
read, peak memory per job, floating-point work and time on a device.

Rules: ``extract_features`` (one job per model; the maps stored whole, and for comparison
what the older layout, every pooled k × k set stored, would write), ``fit_subject_model``
(one job per subject × model fitting every size × draw from shared kernels,
:mod:`encscale.encoding.subject`) and the older ``fit_encoding`` (one job per subject ×
model × size × draw, each reading its rows of every stored set and factorising each itself).

Shapes. A model's layer maps (C, h, w), parameters and forward FLOPs come from building it
on the meta device (no weights, no download) and counting one image's
``forward_intermediates`` (:class:`torch.utils.flop_counter.FlopCounterMode`: matrix
products, convolutions, attention; ≈ 2 · parameters · tokens for a transformer). Plugin
models (``factory:``) cannot be built so: they are listed as unknown and left out of
totals. The data's shapes are fixed by the dataset:

- demo: ``demo.n_shared`` test and ``demo.n_unique`` training images per subject,
  ``n_shared + subjects · n_unique`` stimuli, and the voxels of the simulator's ellipsoid
  brain (:func:`demo_voxels`);
- nsd: the images each subject saw in all its completed sessions
  (:data:`encscale.data.nsd.SEEN_IMAGES`, scaled linearly for fewer ``nsd.sessions``), a
  tenth of them shared (the test split), :data:`encscale.data.nsd.PLANNING_VOXELS` voxels of
  nsdgeneral; ``stimuli.h5`` holds the images any subject saw (shared once, each
  subject's own);
- algonauts2023: :data:`encscale.data.algonauts.TRAIN_IMAGES` training images
  (``algonauts.holdout`` of them the test split), ``TEST_IMAGES`` challenge images and
  ``VERTICES`` of the same module.

A fit job's rows are every draw's training rows (random draws: their expected union) and
the evaluation rows (test and challenge).

Work. New design, per subject × model: :func:`encscale.encoding.plan.fit_job_work` (routes:
:func:`encscale.encoding.plan.choose_route`). Old design, per job:
per set its own thin SVD and the same cross-validation; its refit and predictions are not
counted (a lower bound). r = min(n − 1, p). Peak memory:
:func:`encscale.encoding.plan.peak_bytes`, a layer's sets formed at once bounded by
``encoding.max_memory_mb`` or the device's memory (each further group reads the map again);
the new jobs declare it for every row of the subject (the workflow's
:func:`encscale.encoding.plan.fit_job_shapes`), the old ones declared 4000 MB. Sizes print
in decimal units (GB = 10⁹ bytes).

Rates (FLOP/s; bytes/s of the storage; device memory). cpu: :mod:`encscale.encoding.plan`'s
measurements (2 cores), the rest assumed. h100/h200: assumed, not measured here::

    device  f64 GEMM  f32 GEMM  f64 eigh  forward bf16/fp16  forward fp32  storage  memory
    cpu     2e11      4e11      6e10      2e11               2e11          1 GB/s   -
    h100    50e12     50e12     1.0e12    400e12             25e12         2 GB/s   79 GiB
    h200    60e12     60e12     1.2e12    400e12             25e12         2 GB/s   139 GiB

The GPU rates are below the chips' peaks (float64 tensor cores and float32 without TF32 ~67
TFLOP/s; bf16 ~990 TFLOP/s dense, of which ~40 %; eigendecompositions run far below peak).
H200 has H100's compute; its faster, larger memory (4.8 vs 3.35 TB/s) is assumed to sustain
~20 % more on the float64 kernels. Time = Σ FLOPs / rate + bytes read and written / storage
rate.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml

from encscale.contracts import group_budget, pool_grid
from encscale.data import algonauts, nsd
from encscale.encoding import plan
from encscale.encoding.ensemble import ENSEMBLE, predicted_sizes, study_fits
from encscale.scaling.analysis import geometric_sizes
from encscale.simulate.nsd import brain_atlases
from encscale.vision.layers import LayerExtractor
from encscale.vision.registry import input_spec

OLD_FIT_MEM_MB = 4000  # what each old fit_encoding job declared
NSD_SIDE = 425  # NSD's (and Algonauts 2023's) images, px
NSD_VOLUME = (81, 104, 83)  # NSD's 1.8 mm functional volume
NSD_TRIALS_PER_SESSION = 750
NSD_ALL_IMAGES = 73000  # nsd_stimuli.hdf5


@dataclass(frozen=True)
class ModelShape:
    """A timm model's chosen layer maps (C, h, w), prefix set width per layer (0: dropped),
    parameters, forward FLOPs per image and input side (px)."""

    maps: tuple[tuple[int, int, int], ...]
    prefix: int
    params: int
    forward_flops: float
    input_size: int

    @property
    def map_values(self) -> int:
        """Values of every map and prefix set of one image."""
        return sum(c * h * w + self.prefix for c, h, w in self.maps)


@dataclass(frozen=True)
class SubjectShape:
    """One subject's samples: the training pool, test and challenge images, voxels."""

    subject: str
    n_train: int
    n_test: int
    n_challenge: int
    voxels: int

    @property
    def n_eval(self) -> int:
        return self.n_test + self.n_challenge


# --- models --------------------------------------------------------------------------------


def model_shape(spec: Mapping[str, Any], prefix_tokens: str = "drop") -> ModelShape | None:
    """The shapes of a registry entry's timm model, built on the meta device (nothing
    allocated, nothing downloaded); None for a plugin model."""
    if "factory" in spec or "timm" not in spec:
        return None
    keys = ("timm", "kwargs", "input_size", "mean", "std", "layers")
    built = json.dumps({k: spec[k] for k in keys if k in spec}, sort_keys=True, default=str)
    shapes, n_prefix, params, flops, side = _timm_shapes(built)
    kept = n_prefix if prefix_tokens == "keep" else 0
    return ModelShape(
        maps=shapes,
        prefix=kept * shapes[0][0] if shapes else 0,
        params=params,
        forward_flops=flops,
        input_size=side,
    )


@functools.lru_cache(maxsize=64)
def _timm_shapes(spec_json: str) -> tuple[tuple[tuple[int, int, int], ...], int, int, float, int]:
    """The chosen layers' maps (C, h, w), prefix tokens, parameters, forward FLOPs per image
    and input side of a timm model, from one image's forward on the meta device, through
    the extraction's own :class:`~encscale.vision.layers.LayerExtractor`."""
    from torch.utils.flop_counter import FlopCounterMode

    from encscale.torchtools import import_timm

    spec = json.loads(spec_json)
    timm = import_timm()
    with torch.device("meta"):
        model = timm.create_model(
            spec["timm"], pretrained=False, num_classes=0, **spec.get("kwargs", {})
        ).eval()
    side = input_spec(model, spec).size
    x = torch.zeros(1, 3, side, side, device="meta")
    extractor = LayerExtractor(model, spec, keep_prefix=False)
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        maps = [fmap for fmap, _ in extractor(x)]
    extractor.close()
    return (
        tuple(tuple(int(s) for s in m.shape[1:]) for m in maps),
        int(getattr(model, "num_prefix_tokens", 0)),
        sum(p.numel() for p in model.parameters()),
        float(counter.get_total_flops()),
        side,
    )


def layer_sets(shape: ModelShape, pool_sizes: Sequence[int] | str) -> list[list[int]]:
    """Per layer, its feature sets' widths as a fit forms them: the prefix set if kept,
    then C·k² for each k of the grid."""
    return [
        ([shape.prefix] if shape.prefix else [])
        + [c * k * k for k in pool_grid(pool_sizes, min(h, w))]
        for c, h, w in shape.maps
    ]


def pooled_values(shape: ModelShape, pool_sizes: Sequence[int] | str) -> int:
    """Values per image the old layout stored: every pooled set, C·Σ min(k, s)² per layer
    (the distinct capped k), and the prefix sets."""
    return sum(sum(widths) for widths in layer_sets(shape, pool_sizes))


# --- data ----------------------------------------------------------------------------------


def demo_voxels(volume_shape: Sequence[int], mask_roi: str | None) -> int:
    """Voxels of the demo's responses: the simulator's ``mask_roi`` (null: its brain)."""
    atlases = brain_atlases(tuple(int(s) for s in volume_shape))
    return int(
        (atlases["brainmask"] > 0).sum() if mask_roi is None else (atlases[mask_roi] > 0).sum()
    )


def study_data(config: Mapping[str, Any]) -> tuple[list[SubjectShape], int, int, float]:
    """The subjects' shapes, the number of stimuli in ``stimuli.h5``, their side (px) and
    the raw inputs' bytes (uncompressed: an upper bound)."""
    dataset, subjects = config["dataset"], list(config["subjects"])
    mask_roi = config.get("prepare", {}).get("mask_roi", "nsdgeneral")
    if dataset == "demo":
        demo = config["demo"]
        voxels = demo_voxels(demo["volume_shape"], mask_roi)
        shapes = [SubjectShape(s, demo["n_unique"], demo["n_shared"], 0, voxels) for s in subjects]
        n_all = demo["n_shared"] + demo["n_subjects"] * demo["n_unique"]
        side = int(demo["image_size"])
        trials = (demo["n_shared"] + demo["n_unique"]) * demo["n_repeats"]
        raw = n_all * side * side * 3 + len(subjects) * trials * math.prod(demo["volume_shape"]) * 2
        return shapes, demo["n_shared"] + len(subjects) * demo["n_unique"], side, raw
    if dataset == "nsd":
        sessions = config.get("nsd", {}).get("sessions") or {}
        planned = {s: nsd.planned_images(s, sessions.get(s)) for s in subjects}
        seen = {s: n for s, (n, _) in planned.items()}
        shared = {s: n for s, (_, n) in planned.items()}
        shapes = [
            SubjectShape(s, seen[s] - shared[s], shared[s], 0, nsd.PLANNING_VOXELS)
            for s in subjects
        ]
        n_stimuli = max(shared.values()) + sum(seen[s] - shared[s] for s in subjects)
        n_sessions = sum(
            min(int(sessions.get(s, nsd.SESSIONS[s])), nsd.SESSIONS[s]) for s in subjects
        )
        raw = n_sessions * math.prod(NSD_VOLUME) * NSD_TRIALS_PER_SESSION * 2
        if config.get("nsd", {}).get("stimuli", "full") == "full":
            raw += NSD_ALL_IMAGES * NSD_SIDE * NSD_SIDE * 3
        return shapes, n_stimuli, NSD_SIDE, raw
    if dataset == "algonauts2023":
        holdout = float(config.get("algonauts", {}).get("holdout", 0.1))
        shapes, seen, shared = [], {}, {}
        for s in subjects:
            n_train, n_test = algonauts.TRAIN_IMAGES[s], algonauts.TEST_IMAGES[s]
            held = max(1, round(holdout * n_train))
            shapes.append(SubjectShape(s, n_train - held, held, n_test, algonauts.VERTICES[s]))
            seen[s] = n_train + n_test
            shared[s] = round(nsd.SHARED_IMAGES * seen[s] / 10000)
        n_stimuli = max(shared.values()) + sum(seen[s] - shared[s] for s in subjects)
        raw = sum(
            seen[s] * NSD_SIDE * NSD_SIDE * 3
            + algonauts.TRAIN_IMAGES[s] * algonauts.VERTICES[s] * 4
            for s in subjects
        )
        return shapes, n_stimuli, NSD_SIDE, raw
    raise ValueError(f"dataset must be demo, nsd or algonauts2023, got {dataset!r}")


def expected_rows(n_pool: int, draws: Sequence[int], mode: str = "random") -> int:
    """Distinct training rows of ``draws`` (sizes) drawn from a pool of ``n_pool``: random
    draws without replacement, their expected union; prefix draws, the largest."""
    if mode == "prefix":
        return max(draws)
    missed = math.prod(1.0 - n / n_pool for n in draws)
    return min(n_pool, math.ceil(n_pool * (1.0 - missed) - 1e-9))


# --- the study's settings -------------------------------------------------------------------


def sizes_of(config: Mapping[str, Any]) -> list[int]:
    """``encoding.sizes``, a list or a geometric grid {min, max, num}, sorted."""
    sizes = config["encoding"]["sizes"]
    if isinstance(sizes, Mapping):
        sizes = geometric_sizes(sizes["min"], sizes["max"], sizes["num"])
    return sorted(int(s) for s in sizes)


def old_fit_pairs(config: Mapping[str, Any]) -> tuple[list[tuple[str, int]], list[int]]:
    """(model, size) pairs the old design fitted (:func:`encscale.encoding.ensemble.study_fits`,
    the workflow's ``fit_combinations()``, without the ensemble's), and the ensemble's sizes."""
    pairs = study_fits(config, sizes_of(config))
    ensemble_sizes = sorted(size for model, size in pairs if model == ENSEMBLE)
    return [p for p in pairs if p[0] != ENSEMBLE], ensemble_sizes


# --- fits ----------------------------------------------------------------------------------


def _settings(config: Mapping[str, Any]) -> dict[str, Any]:
    enc = config["encoding"]
    alphas = enc.get("alphas", {"num": 13})
    return dict(
        sizes=sizes_of(config),
        n_draws=int(enc.get("n_draws", 2)),
        n_folds=int(enc.get("n_folds", 5)),
        n_alphas=int(alphas["num"]),
        subsample=enc.get("subsample", "random"),
        max_memory=None if enc.get("max_memory_mb") is None else enc["max_memory_mb"] * 2**20,
    )


def fit_file_bytes(
    n_sets: int, voxels: int, size: int, n_test: int, n_challenge: int, predictions: bool = True
) -> int:
    """Bytes of one fit file (layout: :mod:`encscale.contracts`), without HDF5's overhead;
    ``predictions``: whether it keeps ``test_pred`` (``encoding.predictions``)."""
    per_voxel = 2 + 4 + 4 + 2 * n_sets + 4 + 4 * (n_test * predictions + n_challenge) + 4
    return voxels * per_voxel + 8 * size + 28 * n_sets


def _kept(n: int, sizes: Sequence[int] | None) -> bool:
    return sizes is None or n in sizes


def new_fit_job(
    subject: SubjectShape,
    shape: ModelShape,
    pool_sizes: Sequence[int] | str,
    settings: Mapping[str, Any],
    itemsize: int,
    rates: plan.Rates,
) -> dict[str, float]:
    """One ``fit_subject_model`` job: bytes read and written, peak memory, FLOPs, seconds."""
    draws, rows = job_rows(subject, settings)
    sets = layer_sets(shape, pool_sizes)
    widths = [p for layer in sets for p in layer]
    shapes = plan.FitShapes(
        rows=rows,
        n_train=subject.n_train,
        n_eval=subject.n_eval,
        voxels=subject.voxels,
        draws=draws,
        widths=widths,
        n_alphas=settings["n_alphas"],
        n_folds=settings["n_folds"],
        map_values=max(c * h * w for c, h, w in shape.maps),
        ks_per_layer=max(len(layer) for layer in sets),
    )
    route = {p: plan.choose_route(p, rows, draws, subject.n_eval) for p in set(widths)}
    budget = (settings["max_memory"] or rates.memory) - plan.fixed_bytes(shapes)
    read, largest_group = 0.0, 0
    for (c, h, w), layer in zip(shape.maps, sets, strict=True):
        pooled = layer[1:] if shape.prefix else layer
        if shape.prefix:
            read += rows * shape.prefix * itemsize
            largest_group = max(
                largest_group, plan.set_bytes(route[shape.prefix], shape.prefix, rows)
            )
        held, groups = 0, 1
        for p in pooled:
            need = plan.set_bytes(route[p], p, rows)
            if held and held + need > budget:
                largest_group, held, groups = max(largest_group, held), 0, groups + 1
            held += need
        largest_group = max(largest_group, held)
        read += groups * rows * c * h * w * itemsize
    work = plan.fit_job_work(replace(shapes, routes=[route[p] for p in widths]))
    written = sum(
        fit_file_bytes(
            len(widths),
            subject.voxels,
            n,
            subject.n_test,
            subject.n_challenge,
            _kept(n, settings.get("predict_sizes")),
        )
        for n in draws
    )
    # the workflow's request (plan.fit_job_shapes): every training and evaluation row
    everything = replace(shapes, rows=subject.n_train + subject.n_eval)
    return dict(
        read=read,
        written=written,
        peak=plan.peak_bytes(shapes, group_bytes=largest_group),
        declared=math.ceil(plan.peak_bytes(everything) / 2**20) * 2**20,
        flop=work.total,
        seconds=work.seconds(rates) + (read + written) / rates.storage,
    )


def job_rows(subject: SubjectShape, settings: Mapping[str, Any]) -> tuple[list[int], int]:
    """A subject × model job's draws (the size of each) and the images it reads."""
    draws = [n for n in settings["sizes"] for _ in range(settings["n_draws"])]
    return draws, subject.n_eval + expected_rows(subject.n_train, draws, settings["subsample"])


def model_fit_job(
    subject: SubjectShape,
    shape: ModelShape,
    pool_sizes: Sequence[int] | str,
    settings: Mapping[str, Any],
    itemsize: int,
    rates: plan.Rates,
    *,
    group_bytes: int,
    batch_size: int,
    side: int,
    forward_rate: float,
) -> dict[str, float]:
    """One ``fit_subject_model`` job of ``features.store: none``: the fit's work as
    :func:`new_fit_job`, its images read and run through the model once per group of
    layers (:func:`encscale.encoding.plan.model_maps_passes`), each pass as deep as its
    group's deepest layer, instead of a features file."""
    job = new_fit_job(subject, shape, pool_sizes, settings, itemsize, rates)
    _, rows = job_rows(subject, settings)
    passes = plan.model_maps_passes(rows, shape.maps, itemsize, group_bytes)
    images = passes * rows * side * side * 3
    forward = (
        plan.model_maps_depth(rows, shape.maps, itemsize, group_bytes) * rows * shape.forward_flops
    )
    held = plan.model_maps_bytes(rows, shape.maps, shape.params, itemsize, group_bytes, batch_size)
    seconds = job["seconds"] + (images - job["read"]) / rates.storage + forward / forward_rate
    return dict(
        read=images,
        written=job["written"],
        peak=job["peak"] + held,
        declared=job["declared"] + held,
        flop=job["flop"] + forward,
        seconds=seconds,
        passes=passes,
    )


def old_fit_job(
    subject: SubjectShape,
    shape: ModelShape,
    size: int,
    pool_sizes: Sequence[int] | str,
    settings: Mapping[str, Any],
    itemsize: int,
    rates: plan.Rates,
) -> dict[str, float]:
    """One old ``fit_encoding`` job (one size × draw): its rows of every stored set read,
    each set factorised and cross-validated on its own (refit and predictions not counted)."""
    widths = [p for layer in layer_sets(shape, pool_sizes) for p in layer]
    n = size
    read = (n + subject.n_eval) * sum(widths) * itemsize
    work = plan.Work()
    for p, count in Counter(widths).items():
        r = min(n - 1, p)
        one = plan.thin_svd_flops(n, p)
        one.add(plan.lgo_flops(n, r, settings["n_folds"], settings["n_alphas"], subject.voxels))
        work.add(one, count)
    shapes = plan.FitShapes(
        rows=n + subject.n_eval,
        n_train=subject.n_train,
        n_eval=subject.n_eval,
        voxels=subject.voxels,
        draws=[n],
        widths=widths,
        n_alphas=settings["n_alphas"],
        n_folds=settings["n_folds"],
    )
    p_max = max(widths)
    m = min(n, p_max)
    held = 12 * n * p_max + 16 * m * m  # the set (float32, its float64 copy), Gram, vectors
    written = fit_file_bytes(len(widths), subject.voxels, n, subject.n_test, subject.n_challenge)
    return dict(
        read=read,
        written=written,
        peak=plan.peak_bytes(shapes, group_bytes=held),
        declared=OLD_FIT_MEM_MB * 2**20,
        flop=work.total,
        seconds=work.seconds(rates) + (read + written) / rates.storage,
    )


# --- the study -----------------------------------------------------------------------------


COLUMNS = [
    "rule",
    "design",
    "model",
    "jobs",
    "disk_bytes",
    "read_bytes",
    "peak_bytes",
    "declared_bytes",
    "flop",
    "device_seconds",
    "note",
]


def study_cost(
    config: Mapping[str, Any], device: str = "cpu", pool_sizes: Sequence[int] | str | None = None
) -> pd.DataFrame:
    """Per rule, design and model: jobs, disk written (bytes), bytes read, peak memory of the
    largest job (bytes), declared memory per job (bytes), FLOPs, device-seconds of all its
    jobs, and a note. ``pool_sizes``: the k list of every model (default: each model's
    ``pool_sizes``, else ``encoding.pool_sizes``). Plugin models have NaN numbers and the
    note "unknown (plugin)"."""
    if device not in plan.RATES:
        raise ValueError(f"device must be one of {sorted(plan.RATES)}, got {device!r}")
    rates = plan.RATES[device]
    settings = _settings(config)
    feats = config.get("features", {})
    storage = feats.get("storage", "float32")
    itemsize = np.dtype(storage).itemsize
    forward_rate = (
        rates.forward_fp32 if feats.get("precision", "fp32") == "fp32" else rates.forward_half
    )
    subjects, n_stimuli, side, _ = study_data(config)
    pairs, _ = old_fit_pairs(config)
    rows = []
    for name, spec in config["models"].items():
        shape = model_shape(spec, feats.get("prefix_tokens", "drop"))
        pools = model_pool_sizes(config, name, pool_sizes)
        n_old = len(subjects) * settings["n_draws"] * sum(1 for m, _ in pairs if m == name)
        counts = (
            ("extract_features", "new", 1),
            ("extract_features", "old", 1),
            ("fit_subject_model", "new", len(subjects)),
            ("fit_encoding", "old", n_old),
            ("fit_subject_model", "none", len(subjects)),
        )
        if shape is None:
            for rule, design, jobs in counts:
                rows.append(
                    dict(rule=rule, design=design, model=name, jobs=jobs, note="unknown (plugin)")
                )
            continue
        read = n_stimuli * side * side * 3
        forward = n_stimuli * shape.forward_flops
        declared = spec.get("resources", {}).get("mem_mb")
        batch = int(feats.get("batch_size", 64))
        peak = 4 * shape.params + batch * shape.map_values * 4
        for design, values in (
            ("new", shape.map_values),
            ("old", pooled_values(shape, pools)),
        ):
            disk = n_stimuli * values * itemsize
            rows.append(
                dict(
                    rule="extract_features",
                    design=design,
                    model=name,
                    jobs=1,
                    disk_bytes=disk,
                    read_bytes=read,
                    peak_bytes=peak,
                    declared_bytes=np.nan if declared is None else declared * 2**20,
                    flop=forward,
                    device_seconds=forward / forward_rate + (read + disk) / rates.storage,
                    note=(
                        f"{len(shape.maps)} maps, {_count(shape.params)} params, "
                        f"{_flop(shape.forward_flops)}/image"
                        if design == "new"
                        else "pooled sets stored for every k"
                    ),
                )
            )
        settings["predict_sizes"] = predicted_sizes(config, sizes_of(config), name)
        new = [new_fit_job(s, shape, pools, settings, itemsize, rates) for s in subjects]
        rows.append(
            _fit_row(
                "fit_subject_model",
                "new",
                name,
                new,
                f"{len(settings['sizes']) * settings['n_draws']} draws per job",
            )
        )
        old = [
            old_fit_job(s, shape, size, pools, settings, itemsize, rates)
            for s in subjects
            for m, size in pairs
            if m == name
            for _ in range(settings["n_draws"])
        ]
        sizes = [size for m, size in pairs if m == name]
        rows.append(
            _fit_row("fit_encoding", "old", name, old, f"sizes {sizes}" if sizes else "not fitted")
        )
        live = [
            model_fit_job(
                s,
                shape,
                pools,
                settings,
                itemsize,
                rates,
                group_bytes=group_budget(feats.get("group_memory_mb"), rates.memory),
                batch_size=batch,
                side=side,
                forward_rate=forward_rate,
            )
            for s in subjects
        ]
        passes = sum(j["passes"] for j in live)
        rows.append(
            _fit_row(
                "fit_subject_model",
                "none",
                name,
                live,
                f"no features file: {passes} forward passes over the subjects' images",
            )
        )
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame.attrs.update(device=device, pool_sizes=pool_sizes, n_stimuli=n_stimuli)
    return frame


def _fit_row(
    rule: str, design: str, model: str, jobs: list[dict[str, float]], note: str
) -> dict[str, Any]:
    return dict(
        rule=rule,
        design=design,
        model=model,
        jobs=len(jobs),
        disk_bytes=sum(j["written"] for j in jobs),
        read_bytes=sum(j["read"] for j in jobs),
        peak_bytes=max((j["peak"] for j in jobs), default=0.0),
        declared_bytes=max((j["declared"] for j in jobs), default=np.nan),
        flop=sum(j["flop"] for j in jobs),
        device_seconds=sum(j["seconds"] for j in jobs),
        note=note,
    )


def model_pool_sizes(
    config: Mapping[str, Any], model: str, override: Sequence[int] | str | None = None
) -> Sequence[int] | str:
    """A model's k list: ``override`` if given, else the model's ``pool_sizes``, else
    ``encoding.pool_sizes``."""
    if override is not None:
        return override
    default = config["encoding"].get("pool_sizes", [1, 2, 4, 8])
    return config["models"][model].get("pool_sizes", default)


def images_viewed(config: Mapping[str, Any]) -> bool:
    """Whether ``stimuli.h5`` is a view of a local ``nsd_stimuli.hdf5`` (``prepare.images``
    view, the file fetched whole or an existing copy) rather than a copy of its images."""
    if config["dataset"] not in ("demo", "nsd"):
        return False
    remote = config["dataset"] == "nsd" and config.get("nsd", {}).get("stimuli") == "seen"
    remote = remote and config.get("nsd", {}).get("source", "s3") != "local"
    return config.get("prepare", {}).get("images", "view") == "view" and not remote


def scratch_need(
    config: Mapping[str, Any],
    pool_sizes: Sequence[int] | str | None = None,
    store: str = "file",
) -> dict:
    """Bytes the study writes and holds at its end: ``stimuli.h5`` (nothing when it is a
    view of NSD's file), the responses, the features (known models; none with ``store``
    "none"), every fit file and the ensemble's; and, apart, the dataset's own files
    (``raw``: uncompressed, an upper bound) that it reads."""
    settings = _settings(config)
    feats = config.get("features", {})
    itemsize = np.dtype(feats.get("storage", "float32")).itemsize
    subjects, n_stimuli, side, raw = study_data(config)
    shapes = {
        name: model_shape(spec, feats.get("prefix_tokens", "drop"))
        for name, spec in config["models"].items()
    }
    known = {name: s for name, s in shapes.items() if s is not None}
    n_fits = len(settings["sizes"]) * settings["n_draws"]
    fits = sum(
        fit_file_bytes(
            sum(
                len(layer)
                for layer in layer_sets(shape, model_pool_sizes(config, name, pool_sizes))
            ),
            s.voxels,
            n,
            s.n_test,
            s.n_challenge,
            _kept(n, predicted_sizes(config, sizes_of(config), name)),
        )
        for name, shape in known.items()
        for s in subjects
        for n in settings["sizes"]
        for _ in range(settings["n_draws"])
    )
    _, ensemble_sizes = old_fit_pairs(config)
    fits += sum(
        len(ensemble_sizes) * settings["n_draws"] * s.voxels * 4 * (1 + s.n_eval) for s in subjects
    )
    need = dict(
        stimuli=float(0 if images_viewed(config) else n_stimuli * side * side * 3),
        responses=float(sum(4 * (s.n_train + s.n_test) * s.voxels for s in subjects)),
        features=float(
            0
            if store == "none"
            else sum(n_stimuli * s.map_values * itemsize for s in known.values())
        ),
        fits=float(fits),
    )
    need["total"] = sum(need.values())
    need["raw"] = float(raw)
    # store none: each running job's resume file (encscale.encoding.subject), deleted at its end
    need["resume"] = max(
        (
            n_fits
            * s.voxels
            * (
                24
                + 4 * s.n_eval
                + 4 * sum(map(len, layer_sets(shape, model_pool_sizes(config, m))))
            )
            for m, shape in known.items()
            for s in subjects
        ),
        default=0,
    )
    need["store"] = store
    need["unknown_models"] = [name for name, s in shapes.items() if s is None]
    need["fit_files"] = len(known) * len(subjects) * n_fits
    return need


# --- the printout --------------------------------------------------------------------------


def _size(x: float) -> str:
    if x is None or not np.isfinite(x):
        return "-"
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if abs(x) >= scale:
            return f"{x / scale:,.1f} {unit}"
    return f"{x / 1e3:,.1f} kB"


def _count(x: float) -> str:
    for unit, scale in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:,.{0 if x >= 10 * scale else 1}f} {unit}"
    return f"{x:.0f}"


def _flop(x: float) -> str:
    if not np.isfinite(x):
        return "-"
    scales = (("EFLOP", 1e18), ("PFLOP", 1e15), ("TFLOP", 1e12), ("GFLOP", 1e9), ("MFLOP", 1e6))
    for unit, scale in scales:
        if abs(x) >= scale:
            return f"{x / scale:,.1f} {unit}"
    return f"{x:,.0f} FLOP"


def _hours(x: float) -> str:
    return "-" if not np.isfinite(x) else f"{x / 3600:,.2f}"


def format_cost(frame: pd.DataFrame) -> str:
    """The table of :func:`study_cost` in readable units, and each design's totals."""
    show = pd.DataFrame(
        dict(
            rule=frame["rule"],
            design=frame["design"],
            model=frame["model"],
            jobs=frame["jobs"],
            disk=frame["disk_bytes"].map(_size),
            read=frame["read_bytes"].map(_size),
            peak_per_job=frame["peak_bytes"].map(_size),
            declared=frame["declared_bytes"].map(_size),
            work=frame["flop"].map(_flop),
            device_h=frame["device_seconds"].map(_hours),
            note=frame["note"].fillna(""),
        )
    )
    lines = [show.to_string(index=False), ""]
    by_rule = frame.groupby(["rule", "design"], sort=False)[
        ["jobs", "disk_bytes", "read_bytes", "flop", "device_seconds"]
    ].sum(min_count=1)
    by_rule = by_rule.assign(
        peak_per_job=frame.groupby(["rule", "design"], sort=False)["peak_bytes"].max()
    )
    lines.append("per rule (known models):")
    for (rule, design), row in by_rule.iterrows():
        lines.append(
            f"  {rule:<18} {design:<3}  {int(row['jobs']):>5} jobs"
            f"  disk {_size(row['disk_bytes']):>10}"
            f"  read {_size(row['read_bytes']):>10}  peak/job {_size(row['peak_per_job']):>9}"
            f"  work {_flop(row['flop']):>12}  {_hours(row['device_seconds']):>9} device-h"
        )
    for design in ("new", "old", "none"):
        part = frame[frame["design"] == design]
        lines.append(
            f"total, {design} design: disk {_size(part['disk_bytes'].sum())}, "
            f"read {_size(part['read_bytes'].sum())}, {_flop(part['flop'].sum())}, "
            f"{_hours(part['device_seconds'].sum())} device-hours"
        )
    unknown = sorted(set(frame.loc[frame["note"] == "unknown (plugin)", "model"]))
    if unknown:
        lines.append(f"unknown (plugin), left out of every total: {', '.join(unknown)}")
    return "\n".join(lines)


def format_scratch(need: Mapping[str, Any]) -> str:
    parts = ", ".join(
        f"{key} {_size(need[key]) if need[key] else '0 (a view)' if key == 'stimuli' else '0'}"
        for key in ("stimuli", "responses", "features", "fits")
    )
    design = "new design" if need.get("store", "file") == "file" else "features.store none"
    line = (
        f"scratch the study writes, {design}: {_size(need['total'])} ({parts}; "
        f"{need['fit_files']} fit files); besides, the dataset's own files it reads: "
        f"{_size(need['raw'])}"
    )
    if need["store"] == "none":
        line += f"; while a fit job runs, its resume file: up to {_size(need['resume'])}"
    if need["unknown_models"]:
        line += f"; without {', '.join(need['unknown_models'])} (unknown, plugin)"
    return line


def load_config(path: str | Path) -> dict[str, Any]:
    """A study config with its schema's defaults filled in, when the schema is found next to
    it (``workflow/schemas/config.schema.yaml`` of its repository)."""
    path = Path(path)
    config = yaml.safe_load(path.read_text())
    here = Path(__file__).resolve()
    for root in (path.resolve().parent.parent, here.parents[3]):
        schema = root / "workflow" / "schemas" / "config.schema.yaml"
        if schema.is_file():
            from snakemake.utils import validate

            validate(config, str(schema), set_default=True)
            break
    return config


def parse_pool_sizes(text: str) -> list[int] | str:
    """``all`` or comma-separated k (``1,2,4,8,16``)."""
    text = text.strip()
    if text == "all":
        return "all"
    sizes = [int(k) for k in text.split(",") if k.strip()]
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"pool sizes must be 'all' or k ≥ 1, got {text!r}")
    return sizes


def report(config: Mapping[str, Any], device: str, pool_sizes: Sequence[int] | str | None) -> str:
    """The whole printout: the configured k, and ``pool_sizes`` if given."""
    configured = config["encoding"].get("pool_sizes", [1, 2, 4, 8])
    out = [
        f"{config['dataset']}: {len(config['subjects'])} subjects, {len(config['models'])} models, "
        f"sizes {sizes_of(config)} × {config['encoding'].get('n_draws', 2)} draws; device "
        f"{device} (rates: {plan.RATES_SOURCE[device]})"
    ]
    own = {m: s["pool_sizes"] for m, s in config["models"].items() if "pool_sizes" in s}
    for k in [None] + ([pool_sizes] if pool_sizes is not None else []):
        frame = study_cost(config, device, k)
        label = f"{configured} (as configured{f'; per model: {own}' if own else ''})"
        label = label if k is None else f"{k} (asked for, every model)"
        out += ["", f"k = {label}; {frame.attrs['n_stimuli']} stimuli", format_cost(frame)]
        out.append(format_scratch(scratch_need(config, k)))
        out.append(format_scratch(scratch_need(config, k, store="none")))
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="encscale-cost", description="What an image study's config will cost, per rule."
    )
    parser.add_argument("config", help="the study's config YAML")
    parser.add_argument("--device", choices=sorted(plan.RATES), default="cpu")
    parser.add_argument(
        "--pool-sizes",
        type=parse_pool_sizes,
        default=None,
        help="another k list to cost as well: 'all' or e.g. 1,2,4,8,16",
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    print(report(load_config(args.config), args.device, args.pool_sizes))
    print(f"\n(computed in {time.perf_counter() - started:.1f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
