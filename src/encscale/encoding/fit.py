"""Encoding fits: subsample the training set, choose per voxel (layer, k, penalty), predict.

One fit file per subject × model × training size × draw, ``fits/{subject}/{model}/
n{size}_s{seed}.h5`` (layout: :mod:`encscale.contracts`), with predictions for the
responses file's challenge stimuli (the Algonauts 2023 test images) when it has them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from encscale.contracts import (
    FeatureSet,
    FeaturesFile,
    Fit,
    open_features,
    read_responses,
    write_fit,
)
from encscale.encoding.ridge import fit_ridge_cv_select, kfold_splits
from encscale.metrics import pearson_r
from encscale.vision.layers import maxpool_tokens

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
    pool_sizes: Sequence[int] | str | None = None,
    scoring: str = "r",
    subsample_mode: str = "random",
    device: str = "cpu",
    provenance: Mapping[str, Any] | None = None,
) -> None:
    """Fit one subject × model × training size × draw and write the fit file
    (``size`` None: every training sample, in order, with cross-validation folds that are
    contiguous blocks of them: a time series' neighbours stay in one fold). ``pool_sizes``:
    the k of the sets pooled from each layer's map (None: the file's stored sets)."""
    resp = read_responses(responses_path, ["train", "test"], optional=["challenge"])
    subject = str(resp.attrs.get("subject", Path(responses_path).stem))
    n_available = len(resp.train.responses)
    in_order = size is None
    size = n_available if in_order else size
    try:
        rows = subsample(n_available, size, seed, subsample_mode)
    except ValueError as err:
        raise ValueError(f"{responses_path}: {err}") from err
    y_train = resp.train.responses[rows]
    stim_train = resp.train.stimulus[rows]
    stim_test, stim_challenge = resp.test.stimulus, resp.challenge_stimulus
    folds = kfold_splits(size, n_folds, seed=None if in_order else seed)

    with open_features(features_path) as features:
        sets, model, n_params = features.fit_sets(pool_sizes), features.model, features.n_params
        n_stimuli = features.n_stimuli
        splits = {"training": stim_train, "test": stim_test, "challenge": stim_challenge}
        for split, stim in splits.items():
            if stim is not None and stim.size and stim.max() >= n_stimuli:
                raise ValueError(
                    f"{responses_path}: the {split} samples' stimulus rows reach {stim.max()}, "
                    f"but {features_path} has {n_stimuli} stimuli"
                )

        def load(rows_of_stimuli: np.ndarray):
            return lambda f: read_set(features, sets[f], rows_of_stimuli)

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
        challenge_pred = None
        if stim_challenge is not None:
            challenge_pred = fit.predict(load(stim_challenge)).astype(np.float32)
    test_r = pearson_r(resp.test.responses, test_pred).astype(np.float32)
    log.info("mean test r = %.4f", float(test_r.mean()))

    attrs = dict(
        subject=subject,
        model=model,
        n_params=n_params,
        size=size,
        seed=seed,
        n_folds=n_folds,
        scoring=scoring,
        alphas=np.asarray(alphas, dtype=np.float64),
    )
    result = Fit(
        best_set=fit.best_set,
        feature_sets=np.array([s.name for s in sets]),
        set_depth=np.array([s.depth for s in sets]),
        best_alpha=fit.best_alpha,
        cv_score=fit.cv_score,
        set_scores=fit.set_scores,
        train_rows=rows,
        test_pred=test_pred,
        test_r=test_r,
        challenge_pred=challenge_pred,
        attrs=attrs,
    )
    write_fit(out_path, result, provenance)


def read_set(features: FeaturesFile, fs: FeatureSet, rows: np.ndarray) -> np.ndarray:
    """Rows (n, width) of one feature set as float32: stored, or pooled from its layer's map."""
    if not fs.from_map:
        return features.read_rows(fs, rows)
    layer = next(m for m in features.maps if m.layer == fs.layer)
    return maxpool_tokens(torch.from_numpy(features.read_map(layer, rows)), fs.k).numpy()


def alpha_grid(start: float, stop: float, num: int) -> np.ndarray:
    """Penalties on a log10 grid: ``num`` values from 10**start to 10**stop."""
    return np.logspace(start, stop, num)


def config_alphas(settings: Mapping[str, Any]) -> np.ndarray:
    """The penalties of an ``encoding`` config (``alphas``: ``log10_min``, ``log10_max``,
    ``num``)."""
    alphas = settings["alphas"]
    return alpha_grid(alphas["log10_min"], alphas["log10_max"], alphas["num"])


def fit_encoding_from_config(
    responses_path: str | Path,
    features_path: str | Path,
    out_path: str | Path,
    *,
    size: str | int,
    seed: str | int,
    settings: Mapping[str, Any],
    provenance: Mapping[str, Any] | None = None,
) -> None:
    """:func:`fit_encoding` as the workflow names a fit: ``size`` and ``seed`` as its file
    name spells them (``size`` ``all``: every training sample, in order), ``settings`` the
    study's ``encoding`` config (``n_folds``; ``alphas``: ``log10_min``, ``log10_max``,
    ``num``; ``scoring``, ``subsample``, ``device``; the image study's ``pool_sizes``)."""
    fit_encoding(
        responses_path,
        features_path,
        out_path,
        size=None if str(size) == "all" else int(size),
        seed=int(seed),
        n_folds=settings["n_folds"],
        alphas=config_alphas(settings),
        pool_sizes=settings.get("pool_sizes"),
        scoring=settings["scoring"],
        subsample_mode=settings["subsample"],
        device=settings["device"],
        provenance=provenance,
    )
