"""A synthetic subject at realistic shapes, for tests and benchmarks of the encoding fits: a
features file of layer maps (a ViT-like model) and a responses file whose voxels each
follow one planted layer, pooled to one planted k, at a planted signal-to-noise ratio.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from encscale.contracts import (
    LayerMap,
    Responses,
    Split,
    create_features,
    update_features,
    write_responses,
)


@dataclass(frozen=True)
class SubjectShapes:
    """Images (``n_test`` of them held out), voxels, and the model's layers × channels on a
    side × side map."""

    n_images: int = 2500
    n_test: int = 300
    voxels: int = 3000
    layers: int = 12
    channels: int = 192
    side: int = 14
    planted_ks: tuple[int, ...] = (1, 2, 4)


def write_synthetic_subject(
    directory: str | Path,
    shapes: SubjectShapes = SubjectShapes(),
    *,
    seed: int = 0,
    storage: type = np.float16,
) -> tuple[Path, Path, dict[str, np.ndarray]]:
    """Write ``features.h5`` and ``responses.h5`` under ``directory``; return their paths and
    the planted truth: each voxel's ``layer``, ``k`` and ``snr`` (signal / noise standard
    deviation).

    Layer maps are smooth random fields that drift from layer to layer (neighbouring layers
    correlate, as a network's do). A voxel's signal is a random readout of its layer's map
    max-pooled to its k × k grid.
    """
    rng = np.random.default_rng(seed)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    s = shapes
    maps = [
        LayerMap(f"block{i:02d}", i / max(s.layers - 1, 1), i, s.channels, s.side, s.side)
        for i in range(s.layers)
    ]
    truth = _planted_truth(rng, s)
    signal = np.zeros((s.n_images, s.voxels), dtype=np.float64)
    features = directory / "features.h5"
    create_features(features, [], s.n_images, storage, maps=maps)
    attrs = dict(model="synthetic_vit", n_params=0, layers=[m.layer for m in maps])
    with update_features(features, attrs) as h5:
        state = rng.standard_normal((s.n_images, s.channels, s.side, s.side)).astype(np.float32)
        for i, lm in enumerate(maps):
            drift = rng.standard_normal(state.shape).astype(np.float32)
            state = np.float32(0.8) * state + np.float32(0.6) * _smooth(drift)
            fmap = np.maximum(state, 0) + np.float32(0.1) * state  # a leaky activation
            h5[lm.key][:] = fmap.astype(storage)
            _add_signal(signal, h5[lm.key][:].astype(np.float32), i, truth, s, rng)
    responses = _write_planted_responses(directory, signal, truth["snr"], s, rng)
    return features, responses, truth


def write_model_subject(
    directory: str | Path,
    shapes: SubjectShapes,
    name: str,
    spec: dict,
    *,
    seed: int = 0,
    batch_size: int = 32,
    device: str = "cpu",
) -> tuple[Path, Path, Path, dict[str, np.ndarray]]:
    """A synthetic subject whose maps a real model computes: ``stimuli.h5`` (smooth random
    images of the model's input side), ``features.h5`` extracted from it by ``name`` /
    ``spec`` (:func:`encscale.vision.extract.extract_features`, float32; every one of its
    ``shapes.layers`` maps must be ``shapes.side`` square), and ``responses.h5`` planted on
    the stored maps as :func:`write_synthetic_subject` plants them. Returns the three paths and
    the planted truth; ``truth["extract_s"]`` is the extraction's wall time (s)."""
    import time

    from encscale.contracts import create_image_stimuli, open_features
    from encscale.vision.extract import extract_features

    rng = np.random.default_rng(seed)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    s = shapes
    side = int(spec["input_size"])
    stimuli = directory / "stimuli.h5"
    with create_image_stimuli(stimuli, np.arange(s.n_images), (side, side, 3)) as images:
        for start in range(0, s.n_images, 256):
            n = min(256, s.n_images - start)
            field = _smooth(_smooth(rng.standard_normal((n, 3, side, side)).astype(np.float32)))
            field = 128 + 96 * field / field.std()
            images[start : start + n] = (
                np.clip(field, 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)
            )
    features = directory / "features.h5"
    started = time.perf_counter()
    extract_features(stimuli, features, name, spec, batch_size=batch_size, device=device)
    extract_s = time.perf_counter() - started
    truth = _planted_truth(rng, s)
    signal = np.zeros((s.n_images, s.voxels), dtype=np.float64)
    with open_features(features) as f:
        if len(f.maps) != s.layers or any(
            (m.channels, m.height, m.width) != (s.channels, s.side, s.side) for m in f.maps
        ):
            raise ValueError(f"{name}: its maps {[m.key for m in f.maps]} are not {s}")
        for i, lm in enumerate(f.maps):
            _add_signal(signal, f.read_map(lm, np.arange(s.n_images)), i, truth, s, rng)
    responses = _write_planted_responses(directory, signal, truth["snr"], s, rng)
    return stimuli, features, responses, {**truth, "extract_s": np.asarray(extract_s)}


def _planted_truth(rng: np.random.Generator, s: SubjectShapes) -> dict[str, np.ndarray]:
    """Each voxel's planted layer, k and signal-to-noise ratio."""
    layer = rng.integers(0, s.layers, s.voxels)
    k = rng.choice(np.asarray(s.planted_ks), s.voxels)
    snr = rng.uniform(0.1, 1.0, s.voxels)
    return dict(layer=layer, k=k, snr=snr)


def _add_signal(
    signal: np.ndarray,
    stored: np.ndarray,
    i: int,
    truth: dict[str, np.ndarray],
    s: SubjectShapes,
    rng: np.random.Generator,
) -> None:
    """Add to the voxels planted on layer ``i`` a random readout of its stored map
    (n, C, h, w) max-pooled to their k."""
    for kk in s.planted_ks:
        cols = np.flatnonzero((truth["layer"] == i) & (truth["k"] == kk))
        if cols.size:
            pooled = _maxpool(stored, kk)
            pooled = (pooled - pooled.mean(0)) / (pooled.std(0) + 1e-6)
            w = rng.standard_normal((pooled.shape[1], cols.size)) / np.sqrt(pooled.shape[1])
            signal[:, cols] = pooled @ w


def _write_planted_responses(
    directory: Path,
    signal: np.ndarray,
    snr: np.ndarray,
    s: SubjectShapes,
    rng: np.random.Generator,
) -> Path:
    """``responses.h5``: unit-variance signal plus noise at ``snr``; ``s.n_test`` random
    images held out as the test split."""
    signal /= signal.std(0) + 1e-12
    noise = rng.standard_normal(signal.shape) / snr
    y = (signal + noise).astype(np.float32)
    n_train = s.n_images - s.n_test
    order = rng.permutation(s.n_images)
    train, test = np.sort(order[:n_train]), np.sort(order[n_train:])
    responses = directory / "responses.h5"
    write_responses(
        responses,
        Responses(
            train=Split(y[train], train, n_repeats=np.ones(train.size, np.int32)),
            test=Split(y[test], test, n_repeats=np.ones(test.size, np.int32)),
            noise_ceiling=np.full(s.voxels, np.nan, np.float32),
            attrs=dict(subject="subj01"),
        ),
    )
    return responses


def _smooth(x: np.ndarray) -> np.ndarray:
    """A 3 × 3 box blur over the last two axes (edges wrap): spatially smooth fields."""
    out = np.zeros_like(x)
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            out += np.roll(x, (di, dj), axis=(-2, -1))
    return out / np.float32(3.0)


def _maxpool(fmap: np.ndarray, k: int) -> np.ndarray:
    """Adaptive max-pool (n, C, h, w) to k × k, flattened channel-major (n, C·k²)."""
    n, c, h, w = fmap.shape
    out = np.empty((n, c, k, k), dtype=fmap.dtype)
    for i in range(k):
        r0, r1 = (i * h) // k, -((-(i + 1) * h) // k)
        for j in range(k):
            c0, c1 = (j * w) // k, -((-(j + 1) * w) // k)
            out[:, :, i, j] = fmap[:, :, r0:r1, c0:c1].max(axis=(2, 3))
    return out.reshape(n, -1)
