"""Encoding fits: subsample the training set, choose per voxel (layer, k, penalty), predict.

One fit file per subject × model × training size × draw, ``fits/{subject}/{model}/
n{size}_s{seed}.h5`` (layout: :mod:`encscale.contracts`), with predictions for the
responses file's challenge stimuli (the Algonauts 2023 test images) when it has them.

A movie study's responses file may pair each sample with clips at several lags, a window of
TR clips each (``<split>/lagged``, :mod:`encscale.data.movies`): a set's features at one lag
are the mean of its window's clips' rows; ``lag_mode`` fir concatenates the lags' features
into one set per layer and k (a finite impulse response), select makes a set per lag, so
the cross-validation chooses each parcel's lag with its layer and k (:func:`lagged_sets`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from encscale.contracts import (
    FeatureSet,
    FeaturesFile,
    Fit,
    Split,
    open_features,
    read_responses,
    write_fit,
)
from encscale.encoding.ridge import fit_ridge_cv_select, kfold_splits
from encscale.metrics import pearson_r
from encscale.vision.layers import maxpool_tokens

log = logging.getLogger(__name__)

LAG_MODES = ("fir", "select")


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
    lag_mode: str = "fir",
    provenance: Mapping[str, Any] | None = None,
) -> None:
    """Fit one subject × model × training size × draw and write the fit file
    (``size`` None: every training sample, in order, with cross-validation folds that are
    contiguous blocks of them: a time series' neighbours stay in one fold). ``pool_sizes``:
    the k of the sets pooled from each layer's map (None: the file's stored sets);
    ``lag_mode``: fir or select, for a movie responses file with several lags (module
    docstring)."""
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
    stim_train = lagged_stimuli(resp.train)[rows]
    stim_test = lagged_stimuli(resp.test)
    stim_challenge = resp.challenge_stimulus
    if stim_challenge is not None:
        stim_challenge = stim_challenge[:, None, None]
    lags = sample_lags(responses_path, resp.attrs, stim_train.shape[1])
    folds = kfold_splits(size, n_folds, seed=None if in_order else seed)

    with open_features(features_path) as features:
        model, n_params = features.model, features.n_params
        sets = lagged_sets(features.fit_sets(pool_sizes), lags, lag_mode)
        n_stimuli = features.n_stimuli
        splits = {"training": stim_train, "test": stim_test, "challenge": stim_challenge}
        for split, stim in splits.items():
            if stim is not None and stim.size and stim.max() >= n_stimuli:
                raise ValueError(
                    f"{responses_path}: the {split} samples' stimulus rows reach {stim.max()}, "
                    f"but {features_path} has {n_stimuli} stimuli"
                )
        reader = LaggedReader(features)

        def load(rows_of_stimuli: np.ndarray):
            return lambda f: reader(sets[f], rows_of_stimuli)

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
    if "lags" in resp.attrs:
        attrs.update(
            lags=np.asarray(lags, dtype=np.int64),
            window_trs=int(resp.attrs.get("window_trs", 1)),
            lag_mode=lag_mode,
        )
    result = Fit(
        best_set=fit.best_set,
        feature_sets=np.array([s.name for s in sets]),
        set_depth=np.array([s.depth for s in sets]),
        best_alpha=fit.best_alpha,
        cv_score=fit.cv_score,
        set_scores=fit.set_scores,
        edge_gain=fit.edge_gain,
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


def lagged_stimuli(split: Split) -> np.ndarray:
    """A split's stimulus rows per sample, lag and window clip (n × L × W): its ``lagged``,
    or its ``stimulus`` as one lag of one clip."""
    return split.stimulus[:, None, None] if split.lagged is None else split.lagged


def sample_lags(path: str | Path, attrs: Mapping[str, Any], n_lags: int) -> list[int]:
    """The lags (TRs) of a responses file's ``lagged`` axis: its ``lags`` attribute (with
    one lag, whatever it records: ``[lag]``, or ``[0]`` for a file without lags)."""
    lags = [int(x) for x in np.atleast_1d(attrs.get("lags", [attrs.get("lag", 0)]))]
    if n_lags == 1:
        return lags[:1] if len(lags) == 1 else [0]
    if len(lags) != n_lags:
        raise ValueError(
            f"{path}: the samples' clips come at {n_lags} lags, but its 'lags' attribute "
            f"lists {lags}"
        )
    return lags


@dataclass(frozen=True)
class LaggedSet:
    """A fit's feature set: ``base`` (a layer's set) at the lags ``lag_index`` (positions
    on the responses' lag axis), their features concatenated in that order, each lag's the
    mean of its window's clips; ``name`` its entry in the fit's ``feature_sets``."""

    base: FeatureSet
    lag_index: tuple[int, ...]
    name: str

    @property
    def depth(self) -> float:
        return self.base.depth


def lagged_sets(sets: Sequence[FeatureSet], lags: Sequence[int], mode: str) -> list[LaggedSet]:
    """A fit's sets from the features file's ``sets`` and the samples' ``lags``: fir, one set
    per base set over every lag (named as the base set); select, one per base set and lag
    (``<layer>/k<k>/lag<L>``; with one lag, named as the base set)."""
    if mode not in LAG_MODES:
        raise ValueError(f"lag_mode must be one of {LAG_MODES}, got {mode!r}")
    if mode == "fir" or len(lags) == 1:
        return [LaggedSet(fs, tuple(range(len(lags))), fs.name) for fs in sets]
    return [LaggedSet(fs, (i,), f"{fs.name}/lag{lag}") for fs in sets for i, lag in enumerate(lags)]


class LaggedReader:
    """Reads a :class:`LaggedSet`'s rows (n × width·lags) for samples' lagged stimulus rows
    (n × L × W). One lag of one clip reads the base set's rows as :func:`read_set` does;
    otherwise the base set is read (pooled) once for the distinct clips of all the lags, kept
    for the next call (a select fit's lags of one base set come in a row), and gathered."""

    def __init__(self, features: FeaturesFile) -> None:
        self.features = features
        self._held: tuple[FeatureSet, np.ndarray, np.ndarray, np.ndarray] | None = None

    def __call__(self, ls: LaggedSet, lagged: np.ndarray) -> np.ndarray:
        n, _, window = lagged.shape
        if lagged.shape[1:] == (1, 1):
            return read_set(self.features, ls.base, lagged[:, 0, 0])
        held = self._held
        if held is None or held[0] != ls.base or held[1] is not lagged:
            uniq = np.unique(lagged)
            held = (ls.base, lagged, uniq, read_set(self.features, ls.base, uniq))
            self._held = held
        _, _, uniq, x = held
        picked = lagged[:, list(ls.lag_index)]
        x = x[np.searchsorted(uniq, picked)]  # n × lags × window × width
        x = x[:, :, 0] if window == 1 else x.mean(axis=2)
        return x.reshape(n, -1)


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
    ``num``; ``scoring``, ``subsample``, ``device``; ``pool_sizes``; the movie study's
    ``lag_mode``)."""
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
        lag_mode=settings.get("lag_mode", "fir"),
        provenance=provenance,
    )
