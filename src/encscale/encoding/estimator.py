"""The ridge engine (:mod:`encscale.encoding.ridge`) as scikit-learn estimators.

- :class:`RidgeCV`: every column of y gets its own penalty, chosen by K-fold
  cross-validation (:func:`~encscale.encoding.ridge.fit_ridge_cv`).
- :class:`FeatureSetRidgeCV`: the columns of X form contiguous feature sets (blocks); every
  column of y gets its own set and penalty (:func:`~encscale.encoding.ridge.fit_ridge_cv_select`),
  as the pipeline chooses a (layer, pool size) set per voxel.

Both fit an unpenalised intercept (X and y centred with the training means) and predict
``X @ coef_.T + intercept_``; ``score`` is scikit-learn's R² averaged over targets. A 1-D y
drops the target axis from every fitted attribute and from the predictions, as in
scikit-learn. The folds are contiguous blocks of samples (``fold_seed`` None: neighbouring
fMRI samples stay together) or blocks of a seeded permutation
(:func:`~encscale.encoding.ridge.kfold_splits`).

``scoring`` defaults to ``"mse"`` here, the engine's other scoring, where the pipeline uses
``"r"``: the penalty minimising the validation error is the one ``score`` (R²) rewards,
whereas Pearson r ignores the predictions' scale and can pick a penalty that shrinks them
towards the mean. ``dtype`` is the engine's precision of the work per target (float32 by
default, as in the pipeline; the factorisations run in float64 either way). Needs
scikit-learn ≥ 1.6 (``validate_data``, ``__sklearn_tags__``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils import Tags
from sklearn.utils.validation import check_is_fitted, validate_data

from encscale.encoding.ridge import Fold, fit_ridge_cv, fit_ridge_cv_select, kfold_splits

DEFAULT_ALPHAS: tuple[float, ...] = tuple(np.logspace(-1, 5, 13).tolist())  # the config's grid
DTYPES = {"float32": torch.float32, "float64": torch.float64}
INPUT_DTYPES = (np.float64, np.float32)  # kept as given; anything else becomes float64


class _EngineRidge(RegressorMixin, BaseEstimator):
    """What both estimators share: input checks, folds, engine options and predictions."""

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def _validate_training_data(self, X, y) -> tuple[np.ndarray, np.ndarray]:
        """Checked X (n, p) and y (n,) or (n, v): finite, numeric, matching rows."""
        return validate_data(
            self, X, y, multi_output=True, y_numeric=True, dtype=list(INPUT_DTYPES)
        )

    def _folds(self, n_samples: int) -> list[Fold]:
        """(train_idx, val_idx) pairs of the K-fold cross-validation over ``n_samples``."""
        if not isinstance(self.n_folds, int | np.integer):
            raise ValueError(f"n_folds must be an integer, got {self.n_folds!r}")
        return kfold_splits(n_samples, int(self.n_folds), self.fold_seed)

    def _engine_options(self) -> dict[str, object]:
        """Keyword options of the engine's fits, from the parameters."""
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {list(DTYPES)}, got {self.dtype!r}")
        return {
            "scoring": self.scoring,
            "device": self.device,
            "dtype": DTYPES[self.dtype],
            "voxel_batch": self.voxel_batch,
        }

    def predict(self, X) -> np.ndarray:
        """Predictions (n,) or (n, v) for samples X (n, p)."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=list(INPUT_DTYPES))
        return X @ self.coef_.T + self.intercept_


class RidgeCV(_EngineRidge):
    """Ridge regression with one penalty per target, chosen by K-fold cross-validation.

    Parameters
    ----------
    alphas : penalties tried, positive.
    n_folds : number of cross-validation folds.
    fold_seed : None for contiguous folds, else the seed of the permutation they split.
    scoring : ``"mse"`` (negative mean squared error) or ``"r"`` (Pearson r), averaged over
        the validation folds.
    device : torch device of the work (``"cpu"``, ``"cuda"``).
    dtype : ``"float32"`` or ``"float64"``, the precision of the work per target.
    voxel_batch : targets evaluated together (None: sized to the data).

    Attributes
    ----------
    coef_ : (n_targets, n_features) or (n_features,) for a 1-D y.
    intercept_ : (n_targets,) or a scalar.
    best_alphas_ : (n_targets,) or a scalar, the chosen penalties.
    cv_scores_ : (n_alphas, n_targets) or (n_alphas,), the mean validation score of each
        penalty (higher is better).
    n_features_in_ : number of features seen in ``fit``.
    """

    def __init__(
        self,
        alphas: Sequence[float] = DEFAULT_ALPHAS,
        n_folds: int = 5,
        fold_seed: int | None = None,
        scoring: str = "mse",
        device: str = "cpu",
        dtype: str = "float32",
        voxel_batch: int | None = None,
    ) -> None:
        self.alphas = alphas
        self.n_folds = n_folds
        self.fold_seed = fold_seed
        self.scoring = scoring
        self.device = device
        self.dtype = dtype
        self.voxel_batch = voxel_batch

    def fit(self, X, y) -> RidgeCV:
        """Cross-validate the penalties on X (n, p), y (n,) or (n, v), then refit on all n."""
        X, y = self._validate_training_data(X, y)
        options = self._engine_options()
        result = fit_ridge_cv(X, _columns(y), self.alphas, self._folds(len(X)), **options)
        self.coef_ = _target_axis_last(result.coef, y).T
        self.intercept_ = _target_axis_last(result.intercept, y)
        self.best_alphas_ = _target_axis_last(result.best_alpha, y)
        self.cv_scores_ = _target_axis_last(result.cv_scores, y)
        return self


class FeatureSetRidgeCV(_EngineRidge):
    """Ridge regression choosing per target one feature set of X and its penalty by K-fold
    cross-validation.

    Parameters
    ----------
    feature_sets : sizes of the feature sets, contiguous blocks of X's columns in order
        (``[3, 5]``: set 0 is columns 0–2, set 1 columns 3–7); they must add up to the number
        of features. None: all columns form one set (then this is :class:`RidgeCV`).
    alphas, n_folds, fold_seed, scoring, device, dtype, voxel_batch : as in :class:`RidgeCV`.

    Attributes
    ----------
    coef_ : (n_targets, n_features) or (n_features,) for a 1-D y; 0 outside the chosen set.
    intercept_ : (n_targets,) or a scalar.
    best_set_ : (n_targets,) or a scalar, the index of the chosen feature set.
    best_alphas_ : (n_targets,) or a scalar, the chosen penalties.
    set_scores_ : (n_sets, n_targets) or (n_sets,), the best mean validation score each set
        reached (higher is better); the chosen set has the highest (ties: larger penalty,
        then lower set index).
    n_features_in_ : number of features seen in ``fit``.
    """

    def __init__(
        self,
        feature_sets: Sequence[int] | None = None,
        alphas: Sequence[float] = DEFAULT_ALPHAS,
        n_folds: int = 5,
        fold_seed: int | None = None,
        scoring: str = "mse",
        device: str = "cpu",
        dtype: str = "float32",
        voxel_batch: int | None = None,
    ) -> None:
        self.feature_sets = feature_sets
        self.alphas = alphas
        self.n_folds = n_folds
        self.fold_seed = fold_seed
        self.scoring = scoring
        self.device = device
        self.dtype = dtype
        self.voxel_batch = voxel_batch

    def fit(self, X, y) -> FeatureSetRidgeCV:
        """Cross-validate every (set, penalty) pair on X (n, p), y (n,) or (n, v), then refit
        each target on its chosen set with all n samples."""
        X, y = self._validate_training_data(X, y)
        bounds = _set_bounds(self.feature_sets, X.shape[1])
        options = self._engine_options()

        def load_set(f: int) -> np.ndarray:
            return X[:, bounds[f] : bounds[f + 1]]

        folds = self._folds(len(X))
        sel = fit_ridge_cv_select(
            load_set, len(bounds) - 1, _columns(y), self.alphas, folds, **options
        )
        coef = np.zeros((X.shape[1], sel.best_set.size), dtype=sel.intercept.dtype)
        for f, (targets, set_coef) in enumerate(zip(sel.targets, sel.coefs, strict=True)):
            coef[bounds[f] : bounds[f + 1], targets] = set_coef
        self.coef_ = _target_axis_last(coef, y).T
        self.intercept_ = _target_axis_last(sel.intercept, y)
        self.best_set_ = _target_axis_last(sel.best_set, y)
        self.best_alphas_ = _target_axis_last(sel.best_alpha, y)
        self.set_scores_ = _target_axis_last(sel.set_scores, y)
        return self


def _set_bounds(feature_sets: Sequence[int] | None, n_features: int) -> np.ndarray:
    """Column bounds (n_sets + 1,) of contiguous feature sets of the given sizes: set f is
    ``X[:, bounds[f]:bounds[f + 1]]``. None: one set of all ``n_features`` columns."""
    sizes = np.asarray([n_features] if feature_sets is None else feature_sets)
    if sizes.ndim != 1 or sizes.size == 0 or sizes.dtype.kind not in "iu" or np.any(sizes < 1):
        raise ValueError(
            f"feature_sets must be a non-empty list of positive set sizes, got {feature_sets!r}"
        )
    if sizes.sum() != n_features:
        raise ValueError(
            f"feature_sets {sizes.tolist()} add up to {sizes.sum()} columns, "
            f"but X has {n_features} features"
        )
    return np.concatenate(([0], np.cumsum(sizes)))


def _columns(y: np.ndarray) -> np.ndarray:
    """y as a matrix of targets (n, v): a 1-D y is one column."""
    return y[:, None] if y.ndim == 1 else y


def _target_axis_last(arr: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``arr`` (..., v) of the engine, without its (last) target axis when y is 1-D."""
    return arr[..., 0] if y.ndim == 1 else arr
