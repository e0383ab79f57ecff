"""The scikit-learn estimators over the ridge engine: scikit-learn's API checks, agreement with
scikit-learn's Ridge/RidgeCV and himalaya's RidgeCV, planted feature sets, Pipeline and
GridSearchCV.

Tolerances (float64 work, ``dtype="float64"``): coefficients, intercepts and predictions
within 1e-5 of the reference relative to its largest magnitude; penalties equal.
"""

from __future__ import annotations

import numpy as np
import pytest
from himalaya.backend import get_backend, set_backend
from himalaya.ridge import RidgeCV as HimalayaRidgeCV
from himalaya.scoring import correlation_score
from sklearn.base import clone
from sklearn.linear_model import Ridge
from sklearn.linear_model import RidgeCV as SklearnRidgeCV
from sklearn.metrics import r2_score
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from encscale.encoding import FeatureSetRidgeCV, RidgeCV
from encscale.encoding.ridge import kfold_splits

ALPHAS = tuple(np.logspace(-2, 5, 8).tolist())
RTOL = 1e-5


def planted_problem(n: int, p: int, v: int, seed: int, n_new: int = 50):
    """X (n, p) with offsets, Y (n, v) = X W + noise with SNR growing over targets (so the
    best penalty differs across them), and new samples X_new (n_new, p), Y_new (n_new, v)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n + n_new, p)) + rng.standard_normal(p)
    snr = np.logspace(-1, 1.5, v)
    W = rng.standard_normal((p, v)) * np.sqrt(snr / p)
    Y = X @ W + rng.standard_normal((n + n_new, v)) + 3 * rng.standard_normal(v)
    return X[:n], Y[:n], X[n:], Y[n:]


def assert_close(ours: np.ndarray, expected: np.ndarray) -> None:
    """max|Δ| ≤ RTOL · max|expected|."""
    np.testing.assert_allclose(ours, expected, rtol=0, atol=RTOL * np.abs(expected).max())


@pytest.fixture
def himalaya_numpy():
    """himalaya on its numpy backend for one test; the previous backend afterwards."""
    previous = get_backend()
    set_backend("numpy", on_error="raise")
    yield
    set_backend(previous, on_error="raise")


@parametrize_with_checks([RidgeCV(), FeatureSetRidgeCV()])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


# --- agreement with references --------------------------------------------------------------


def test_refit_matches_sklearn_ridge_with_the_chosen_penalty():
    X, Y, X_new, _ = planted_problem(80, 30, 12, seed=1)
    model = RidgeCV(alphas=ALPHAS, dtype="float64").fit(X, Y)
    assert model.coef_.shape == (12, 30) and model.cv_scores_.shape == (len(ALPHAS), 12)
    assert model.n_features_in_ == 30
    assert np.unique(model.best_alphas_).size >= 3  # the problem exercises the choice
    pred = model.predict(X_new)
    for j in range(Y.shape[1]):
        ref = Ridge(alpha=model.best_alphas_[j]).fit(X, Y[:, j])
        assert_close(model.coef_[j], ref.coef_)
        assert model.intercept_[j] == pytest.approx(ref.intercept_, rel=RTOL)
        assert_close(pred[:, j], ref.predict(X_new))


def test_one_dimensional_y_gives_one_dimensional_results():
    X, Y, X_new, Y_new = planted_problem(80, 30, 4, seed=2)
    both = RidgeCV(alphas=ALPHAS, dtype="float64").fit(X, Y)
    one = RidgeCV(alphas=ALPHAS, dtype="float64").fit(X, Y[:, 3])
    assert one.coef_.shape == (30,) and np.ndim(one.intercept_) == 0
    assert np.ndim(one.best_alphas_) == 0 and one.cv_scores_.shape == (len(ALPHAS),)
    assert one.best_alphas_ == both.best_alphas_[3]
    pred = one.predict(X_new)
    assert pred.shape == (50,)
    assert_close(pred, both.predict(X_new)[:, 3])
    assert one.score(X_new, Y_new[:, 3]) == pytest.approx(r2_score(Y_new[:, 3], pred))
    assert both.score(X_new, Y_new) == pytest.approx(r2_score(Y_new, both.predict(X_new)))


def test_penalties_match_sklearn_ridgecv_per_target():
    """scoring="mse": scikit-learn's RidgeCV over the same folds (a grid search of Ridge, one
    target at a time; descending grid so that ties go to the larger penalty, as here)."""
    X, Y, _, _ = planted_problem(100, 25, 10, seed=3)
    model = RidgeCV(alphas=ALPHAS, dtype="float64").fit(X, Y)
    folds = kfold_splits(100, 5)
    for j in range(Y.shape[1]):
        ref = SklearnRidgeCV(alphas=ALPHAS[::-1], cv=folds, scoring="neg_mean_squared_error")
        ref.fit(X, Y[:, j])
        assert model.best_alphas_[j] == ref.alpha_
        assert model.cv_scores_[:, j].max() == pytest.approx(ref.best_score_, rel=1e-9)
    assert np.unique(model.best_alphas_).size >= 3


def test_penalties_match_himalaya_with_correlation_scoring(himalaya_numpy):
    """scoring="r" and a seeded fold permutation: himalaya's RidgeCV on the same folds with
    Pearson r, per-target penalties and per-fold centring (fit_intercept=True)."""
    X, Y, X_new, _ = planted_problem(120, 20, 40, seed=4)
    model = RidgeCV(alphas=ALPHAS, fold_seed=7, scoring="r", dtype="float64").fit(X, Y)
    params = dict(score_func=correlation_score, local_alpha=True, conservative=False)
    ref = HimalayaRidgeCV(
        alphas=np.array(ALPHAS),
        fit_intercept=True,
        solver="svd",
        cv=kfold_splits(120, 5, seed=7),
        solver_params=params,
    ).fit(X, Y)
    np.testing.assert_allclose(model.best_alphas_, ref.best_alphas_, rtol=1e-6)
    assert np.unique(model.best_alphas_).size >= 3
    assert_close(model.predict(X_new), ref.predict(X_new))


# --- feature-set selection ------------------------------------------------------------------


def planted_blocks(n: int, widths: list[int], v: int, seed: int, n_new: int = 50):
    """X (n, sum(widths)) of independent blocks, the first v/2 targets made from block 0,
    the rest from block 1; new samples X_new (n_new, ·)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n + n_new, sum(widths)))
    block = np.repeat([0, 1], v // 2)
    W = np.zeros((sum(widths), v))
    for j, f in enumerate(block):
        start = sum(widths[:f])
        W[start : start + widths[f], j] = rng.standard_normal(widths[f]) / np.sqrt(widths[f])
    Y = X @ W + 0.5 * rng.standard_normal((n + n_new, v))
    return X[:n], Y[:n], X[n:], block


def test_feature_set_selection_recovers_planted_blocks():
    widths = [10, 15]
    X, Y, X_new, planted = planted_blocks(120, widths, 20, seed=5)
    model = FeatureSetRidgeCV(feature_sets=widths, alphas=ALPHAS, dtype="float64").fit(X, Y)
    assert np.array_equal(model.best_set_, planted)
    assert model.set_scores_.shape == (2, 20)
    in_block_1 = np.arange(25) >= 10
    outside_chosen_set = in_block_1[None, :] != (planted[:, None] == 1)  # (targets, features)
    assert np.all(model.coef_[outside_chosen_set] == 0)
    pred = model.predict(X_new)
    for f, cols in enumerate((slice(0, 10), slice(10, 25))):
        targets = planted == f
        alone = RidgeCV(alphas=ALPHAS, dtype="float64").fit(X[:, cols], Y[:, targets])
        assert np.array_equal(alone.best_alphas_, model.best_alphas_[targets])
        np.testing.assert_allclose(alone.cv_scores_.max(0), model.set_scores_[f, targets])
        assert_close(model.coef_[targets][:, cols], alone.coef_)
        assert_close(pred[:, targets], alone.predict(X_new[:, cols]))


def test_one_feature_set_equals_ridgecv():
    X, Y, X_new, _ = planted_problem(80, 30, 6, seed=6)
    whole = RidgeCV(alphas=ALPHAS, dtype="float64").fit(X, Y)
    one_set = FeatureSetRidgeCV(alphas=ALPHAS, dtype="float64").fit(X, Y[:, 0])
    assert one_set.best_set_ == 0 and one_set.best_alphas_ == whole.best_alphas_[0]
    assert_close(one_set.predict(X_new), whole.predict(X_new)[:, 0])


# --- scikit-learn tools -----------------------------------------------------------------------


def test_pipeline_with_scaler_fits_the_scaled_features():
    X, Y, X_new, Y_new = planted_problem(100, 20, 5, seed=8)
    Y, Y_new = Y[:, 3:], Y_new[:, 3:]  # the two strongest targets (SNR 7.5 and 32)
    X, X_new = X * np.arange(1, 21), X_new * np.arange(1, 21)  # scales the scaler removes
    pipe = make_pipeline(StandardScaler(), RidgeCV(alphas=ALPHAS, dtype="float64")).fit(X, Y)
    scaler = StandardScaler().fit(X)
    alone = RidgeCV(alphas=ALPHAS, dtype="float64").fit(scaler.transform(X), Y)
    assert_close(pipe.predict(X_new), alone.predict(scaler.transform(X_new)))
    assert pipe.score(X_new, Y_new) > 0.8


def test_grid_search_over_folds_refits_the_best():
    X, Y, X_new, _ = planted_problem(90, 15, 3, seed=9)
    y = Y[:, -1]  # the strongest target
    search = GridSearchCV(RidgeCV(alphas=ALPHAS, dtype="float64"), {"n_folds": [3, 5]}, cv=3)
    search.fit(X, y)
    assert search.cv_results_["mean_test_score"].min() > 0.8
    best = clone(search.estimator).set_params(**search.best_params_).fit(X, y)
    assert_close(search.predict(X_new), best.predict(X_new))


# --- bad input ------------------------------------------------------------------------------


def test_bad_input_raises_clear_errors():
    X, Y, _, _ = planted_problem(40, 6, 2, seed=10)
    with pytest.raises(ValueError, match="Input X contains NaN"):
        RidgeCV().fit(np.where(X > 2, np.nan, X), Y)
    with pytest.raises(ValueError, match="Input y contains infinity"):
        RidgeCV().fit(X, np.where(Y > 3, np.inf, Y))
    with pytest.raises(ValueError, match="cannot split 40 samples into 50 folds"):
        RidgeCV(n_folds=50).fit(X, Y)
    with pytest.raises(ValueError, match="n_folds must be an integer"):
        RidgeCV(n_folds=2.5).fit(X, Y)
    with pytest.raises(ValueError, match="dtype must be one of"):
        RidgeCV(dtype="float16").fit(X, Y)
    with pytest.raises(ValueError, match="scoring must be one of"):
        RidgeCV(scoring="r2").fit(X, Y)
    with pytest.raises(ValueError, match="alphas must be positive"):
        RidgeCV(alphas=(1.0, -1.0)).fit(X, Y)
    with pytest.raises(ValueError, match=r"add up to 5 columns, but X has 6 features"):
        FeatureSetRidgeCV(feature_sets=[2, 3]).fit(X, Y)
    for bad in ([], [3, 0, 3], [2.5, 3.5], 6):
        with pytest.raises(ValueError, match="positive set sizes"):
            FeatureSetRidgeCV(feature_sets=bad).fit(X, Y)
    model = RidgeCV().fit(X, Y)
    with pytest.raises(ValueError, match="X has 5 features, but RidgeCV is expecting 6"):
        model.predict(X[:, :5])
