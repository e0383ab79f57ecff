"""Encoding fits: subsample the training set, choose per voxel (layer, k, penalty), predict.

File layout of ``fits/{subject}/{model}/n{size}_s{seed}.h5``:

- ``best_set`` int16 (V,): index into ``feature_sets`` of each voxel's chosen set
- ``feature_sets`` (n_sets,) strings ``<layer>/k<k>``; ``set_depth`` float (n_sets,)
  relative depth of each set's layer (0 = first block, 1 = last)
- ``best_alpha`` float32 (V,), ``cv_score`` float32 (V,), ``set_scores`` float32 (n_sets, V)
- ``train_rows`` int64 (size,): rows of ``train/`` in the responses file that were used
- ``test_pred`` float32 (n_test × V), ``test_r`` float32 (V,): Pearson r on the test split
- ``challenge_pred`` float32 (n_challenge × V): predictions for the stimuli without
  responses (``challenge/stimulus``, the Algonauts 2023 test images), when the responses
  file has them
- attrs: ``subject``, ``model``, ``n_params``, ``size``, ``seed``, ``n_folds``, ``scoring``
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from encscale.encoding.ridge import fit_ridge_cv_select, kfold_splits
from encscale.io import check_finite, create_h5, open_h5, read_dataset
from encscale.metrics import pearson_r
from encscale.vision.features import feature_sets

log = logging.getLogger(__name__)


def subsample(n_available: int, size: int, seed: int, mode: str = "random") -> np.ndarray:
    """Sorted row indices of a training subsample of ``size`` rows.

    ``random`` draws without replacement with ``seed``; ``prefix`` takes the first rows
    (the first study's nested subsets; every seed then gives the same rows).
    """
    if size > n_available:
        raise ValueError(f"training size {size} is larger than the {n_available} samples available")
    if mode == "prefix":
        return np.arange(size)
    if mode != "random":
        raise ValueError(f"unknown subsample mode '{mode}' (expected 'random' or 'prefix')")
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_available, size=size, replace=False))


def fit_encoding(
    responses_path: str | Path,
    features_path: str | Path,
    out_path: str | Path,
    *,
    size: int | None,
    seed: int,
    n_folds: int,
    alphas: np.ndarray,
    scoring: str = "r",
    subsample_mode: str = "random",
    device: str = "cpu",
    provenance: Mapping[str, Any] | None = None,
) -> None:
    """Fit one subject × model × training size × draw and write the fit file
    (``size`` None: every training sample, in order, with cross-validation folds that are
    contiguous blocks of them: a time series' neighbours stay in one fold)."""
    sets = feature_sets(features_path)
    with open_h5(responses_path, "responses") as resp:
        y_train_all = read_dataset(resp, "train/responses", ndim=2)
        stim_train_all = read_dataset(resp, "train/stimulus", ndim=1)
        y_test = read_dataset(resp, "test/responses", ndim=2)
        stim_test = read_dataset(resp, "test/stimulus", ndim=1)
        stim_challenge = (
            read_dataset(resp, "challenge/stimulus", ndim=1) if "challenge" in resp else None
        )
        subject = str(resp.attrs.get("subject", Path(responses_path).stem))
    check_finite(y_train_all, f"{responses_path}: train/responses")
    in_order = size is None
    size = len(y_train_all) if in_order else size
    try:
        rows = subsample(len(y_train_all), size, seed, subsample_mode)
    except ValueError as err:
        raise ValueError(f"{responses_path}: {err}") from err
    y_train = y_train_all[rows]
    stim_train = stim_train_all[rows]
    folds = kfold_splits(size, n_folds, seed=None if in_order else seed)

    with open_h5(features_path, "features") as feats:
        n_params = int(feats.attrs["n_params"])
        model = str(feats.attrs["model"])
        n_stimuli = feats[sets[0]["key"]].shape[0]
        splits = {"train": stim_train, "test": stim_test, "challenge": stim_challenge}
        for split, stim in splits.items():
            if stim is not None and stim.size and stim.max() >= n_stimuli:
                raise ValueError(
                    f"{responses_path}: {split}/stimulus refers to row {stim.max()}, but "
                    f"{features_path} has {n_stimuli} stimuli"
                )

        def load(rows_of_stimuli: np.ndarray):
            return lambda f: _read_rows(feats[sets[f]["key"]], rows_of_stimuli)

        log.info(
            "%s %s n=%d seed=%d: %d feature sets, %d voxels, %d folds",
            subject,
            model,
            size,
            seed,
            len(sets),
            y_train.shape[1],
            n_folds,
        )
        fit = fit_ridge_cv_select(
            load(stim_train), len(sets), y_train, alphas, folds, scoring=scoring, device=device
        )
        test_pred = fit.predict(load(stim_test)).astype(np.float32)
        if stim_challenge is not None:
            challenge_pred = fit.predict(load(stim_challenge)).astype(np.float32)
    test_r = pearson_r(y_test, test_pred).astype(np.float32)
    log.info("mean test r = %.4f", float(test_r.mean()))

    with create_h5(out_path, provenance) as out:
        out["best_set"] = fit.best_set.astype(np.int16)
        out["feature_sets"] = np.array([f"{s['layer']}/k{s['k']}" for s in sets], dtype="S")
        out["set_depth"] = np.array([s["depth"] for s in sets], dtype=np.float32)
        out["best_alpha"] = fit.best_alpha.astype(np.float32)
        out["cv_score"] = fit.cv_score.astype(np.float32)
        out["set_scores"] = fit.set_scores.astype(np.float32)
        out["train_rows"] = rows.astype(np.int64)
        out["test_pred"] = test_pred
        out["test_r"] = test_r
        if stim_challenge is not None:
            out["challenge_pred"] = challenge_pred
        out.attrs.update(
            subject=subject,
            model=model,
            n_params=n_params,
            size=size,
            seed=seed,
            n_folds=n_folds,
            scoring=scoring,
            alphas=np.asarray(alphas, dtype=np.float64),
        )


def _read_rows(dset: h5py.Dataset, rows: np.ndarray) -> np.ndarray:
    """Rows (any order, repeats allowed) of a 2-D HDF5 dataset as float32, finite-checked."""
    uniq, inverse = np.unique(rows, return_inverse=True)
    x = dset[uniq][inverse].astype(np.float32, copy=False)
    check_finite(x, f"{dset.file.filename}: {dset.name}")
    return x


def alpha_grid(start: float, stop: float, num: int) -> np.ndarray:
    """Penalties on a log10 grid: ``num`` values from 10**start to 10**stop."""
    return np.logspace(start, stop, num)
