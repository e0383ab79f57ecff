"""encscale's K-fold ridge CV against himalaya and scikit-learn as independent oracles.

The configuration under which himalaya 0.4.11 (numpy backend, float64 data) solves the
same problem as ``fit_ridge_cv(X, Y, alphas, folds, scoring="r")``::

    solver_params = dict(score_func=correlation_score, local_alpha=True, conservative=False)
    RidgeCV(alphas, fit_intercept=True, solver="svd", cv=folds, solver_params=...)  # p < n
    KernelRidgeCV(alphas, kernel="linear", fit_intercept=True, solver="eigenvalues",
                  cv=folds, solver_params=...)                                       # p ≥ n

- ``fit_intercept=True`` is what makes the intercept unpenalised *per fold*: RidgeCV then
  centres X and Y with each training fold's means (validation data with the same means), and
  KernelRidgeCV centres the whole linear kernel, then the training block of each fold with
  KernelCenterer, which equals centring X with the training fold's means. With the default
  ``fit_intercept=False`` himalaya centres nothing: pre-centring the data globally would use
  all samples' means in every fold, a slightly different problem from encscale's.
- ``cv=folds``: the very (train, val) index pairs of :func:`kfold_splits`.
- ``correlation_score`` is Pearson r on the validation fold; himalaya averages it over the
  folds with equal weights, as encscale does.
- Ties: himalaya adds 1e-10·log(α) to the mean scores, so it prefers the larger penalty among
  scores equal within ~1e-9; encscale prefers the larger one only among *exactly* equal
  scores. They part where every penalty gives the same r in exact arithmetic, as with p = 1
  (the prediction is then a multiple of x, whose correlation does not depend on α): the
  scores differ by round-off (~1e-16), himalaya takes the largest penalty and encscale one
  chosen by the round-off. There the penalties cannot be compared; the test checks the tie
  itself, himalaya's score, and encscale's refit against scikit-learn's Ridge with
  encscale's own penalties.
- himalaya discards a penalty below twice a negative round-off eigenvalue of the training
  kernel; with the penalties here (≥ 1e-2) that never applies.

scikit-learn: ``RidgeCV(cv=folds, scoring=<Pearson r>)`` is a grid search over
``Ridge(fit_intercept=True)`` (per-fold centring, equal fold weights), one penalty for all
targets (``alpha_per_target`` needs its leave-one-out mode), so it is the oracle target by
target. The grid goes in descending order there so that its ties (first best) go to the
larger penalty.

Acceptance: the same penalty on ≥ 99 % of targets and predictions on new samples within 1e-4
relative (max|Δ| / max|prediction|) on those targets; the best mean validation r per target
within 1e-7 (float64) or 1e-5 (float32) of himalaya's ``cv_scores_``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from himalaya.backend import get_backend, set_backend
from himalaya.kernel_ridge import KernelRidgeCV
from himalaya.ridge import RidgeCV as HimalayaRidgeCV
from himalaya.scoring import correlation_score
from sklearn.linear_model import Ridge, RidgeCV
from sklearn.metrics import make_scorer

from encscale.encoding.ridge import fit_ridge_cv, fit_ridge_cv_select, kfold_splits
from encscale.metrics import pearson_r

ALPHAS = np.logspace(-2, 6, 9)
FOLDS = 5


@pytest.fixture(autouse=True)
def himalaya_numpy():
    """himalaya on its numpy backend for these tests; the previous backend afterwards."""
    previous = get_backend()
    set_backend("numpy", on_error="raise")
    yield
    set_backend(previous, on_error="raise")


def make_problem(n: int, p: int, v: int, seed: int, n_new: int = 50):
    """X (n, p) with a decaying spectrum and offsets, Y (n, v) with SNR spread over targets.

    With weights W ~ N(0, SNR/p) the best penalty is ≈ p/SNR, so it differs across targets.
    Returns X, Y and new samples X_new (n_new, p), all float64.
    """
    rng = np.random.default_rng(seed)
    spectrum = np.arange(1, p + 1) ** -0.75
    spectrum *= np.sqrt(p / np.sum(spectrum**2))
    X = rng.standard_normal((n + n_new, p)) * spectrum + rng.standard_normal(p)
    snr = np.logspace(-1.5, 1.5, v)
    W = rng.standard_normal((p, v)) * np.sqrt(snr / p)
    Y = X[:n] @ W + rng.standard_normal((n, v)) + 3 * rng.standard_normal(v)
    return X[:n], Y, X[n:]


def fit_himalaya(X: np.ndarray, Y: np.ndarray, alphas: np.ndarray, folds: list):
    """himalaya's matching estimator (see the module docstring), fitted."""
    params = dict(score_func=correlation_score, local_alpha=True, conservative=False)
    common = dict(alphas=alphas, fit_intercept=True, cv=folds, solver_params=params)
    if X.shape[1] < X.shape[0]:
        model = HimalayaRidgeCV(solver="svd", **common)
    else:
        model = KernelRidgeCV(kernel="linear", solver="eigenvalues", **common)
    return model.fit(X, Y)


def same_alpha(ours: np.ndarray, theirs: np.ndarray) -> np.ndarray:
    """Mask of equal penalties; himalaya returns exp(−log α), equal to α within round-off."""
    return np.isclose(ours, np.reshape(theirs, -1), rtol=1e-6, atol=0)


def assert_predictions_match(ours: np.ndarray, theirs: np.ndarray, mask: np.ndarray) -> None:
    """max|Δ| / max|prediction| < 1e-4 over the targets in ``mask``."""
    ours, theirs = ours.reshape(len(ours), -1), theirs.reshape(len(theirs), -1)
    delta = np.abs(ours - theirs)[:, mask].max()
    assert delta / np.abs(theirs).max() < 1e-4


def check_against_himalaya(
    n: int, p: int, v: int, alphas: np.ndarray, dtype: torch.dtype, seed: int
) -> np.ndarray:
    """Run both, assert the acceptance criteria; return himalaya's chosen penalties."""
    X, Y, X_new = make_problem(n, p, v, seed)
    folds = kfold_splits(n, FOLDS)
    ours = fit_ridge_cv(X, Y, alphas, folds, scoring="r", dtype=dtype)
    ref = fit_himalaya(X, Y, alphas, folds)
    same = same_alpha(ours.best_alpha, ref.best_alphas_)
    assert same.mean() >= 0.99, f"same penalty on {same.mean():.1%} of targets"
    assert_predictions_match(ours.predict(X_new), ref.predict(X_new), same)
    best = ours.cv_scores.max(axis=0)  # the best mean validation r itself, to round-off
    atol = 1e-7 if dtype == torch.float64 else 1e-5
    np.testing.assert_allclose(best, np.reshape(ref.cv_scores_, -1), rtol=0, atol=atol)
    return np.reshape(ref.best_alphas_, -1)


@pytest.mark.parametrize(
    ("n", "p", "v", "dtype"),
    [
        (200, 40, 300, torch.float64),  # p < n: himalaya RidgeCV
        (120, 400, 200, torch.float64),  # p > n: himalaya KernelRidgeCV
        # encscale's default float32 on larger p, where forming the Gram matrix in float32
        # (an emulation of that, once) shifts the best r by ~2e-2 and fails this test
        (600, 300, 300, torch.float32),
        (300, 900, 200, torch.float32),
    ],
    ids=["p<n-f64", "p>n-f64", "p<n-f32", "p>n-f32"],
)
def test_matches_himalaya(n, p, v, dtype):
    chosen = check_against_himalaya(n, p, v, ALPHAS, dtype, seed=p)
    spread = np.unique(np.round(np.log10(chosen))).size
    assert spread >= 4, f"only {spread} distinct penalties: the problem does not test the choice"


@pytest.mark.parametrize(
    ("n", "p", "v", "alphas"),
    [
        (200, 40, 100, np.array([10.0])),  # one penalty
        (200, 40, 1, ALPHAS),  # one target
        (120, 400, 1, ALPHAS),  # one target, kernel regime
    ],
    ids=["one-alpha", "v=1", "v=1-kernel"],
)
def test_matches_himalaya_edge_shapes(n, p, v, alphas):
    check_against_himalaya(n, p, v, alphas, torch.float64, seed=7)


def test_one_feature_ties_on_r_and_refits_like_sklearn():
    """p = 1: all penalties tie on r (see the module docstring); compare what is defined."""
    X, Y, X_new = make_problem(100, 1, 50, seed=7)
    folds = kfold_splits(100, FOLDS)
    ours = fit_ridge_cv(X, Y, ALPHAS, folds, scoring="r", dtype=torch.float64)
    ref = fit_himalaya(X, Y, ALPHAS, folds)
    # a tie in exact arithmetic: round-off only (the one-factorisation path solves n_v × n_v
    # systems, ~1e-12), far inside himalaya's own tie window (1e-10·log α)
    assert np.ptp(ours.cv_scores, axis=0).max() < 1e-10
    np.testing.assert_allclose(ours.cv_scores[0], np.reshape(ref.cv_scores_, -1), atol=1e-7)
    assert np.allclose(ref.best_alphas_, ALPHAS.max(), rtol=1e-6)  # himalaya: the largest
    expected = Ridge(alpha=ours.best_alpha, fit_intercept=True).fit(X, Y).predict(X_new)
    assert_predictions_match(ours.predict(X_new), expected, np.ones(Y.shape[1], dtype=bool))


def pearson_scorer():
    """scikit-learn scorer: Pearson r of one target's predictions."""

    def r(y_true: np.ndarray, y_pred: np.ndarray) -> float:
        return float(pearson_r(y_true.reshape(-1, 1), y_pred.reshape(-1, 1))[0])

    return make_scorer(r)


@pytest.mark.parametrize(("n", "p"), [(200, 40), (120, 400)], ids=["p<n", "p>n"])
def test_matches_sklearn_kfold_gridsearch_per_target(n, p):
    X, Y, X_new = make_problem(n, p, 60, seed=11)
    folds = kfold_splits(n, FOLDS)
    ours = fit_ridge_cv(X, Y, ALPHAS, folds, scoring="r", dtype=torch.float64)
    pred = ours.predict(X_new)
    targets = np.unique(np.linspace(0, Y.shape[1] - 1, 6).astype(int))  # weak to strong
    chosen = []
    for j in targets:
        ref = RidgeCV(alphas=ALPHAS[::-1], cv=folds, scoring=pearson_scorer()).fit(X, Y[:, j])
        chosen.append(ref.alpha_)
        assert ours.best_alpha[j] == pytest.approx(ref.alpha_, rel=1e-12)
        assert ours.cv_scores[:, j].max() == pytest.approx(ref.best_score_, abs=1e-9)
        expected = ref.predict(X_new)
        assert np.abs(pred[:, j] - expected).max() / np.abs(expected).max() < 1e-6
    assert len(set(chosen)) >= 2


@pytest.mark.parametrize(("n", "p"), [(200, 40), (120, 400)], ids=["p<n", "p>n"])
def test_select_with_one_set_equals_fit_ridge_cv(n, p):
    X, Y, X_new = make_problem(n, p, 120, seed=5)
    folds = kfold_splits(n, FOLDS)
    single = fit_ridge_cv(X, Y, ALPHAS, folds, scoring="r")
    selected = fit_ridge_cv_select(lambda f: X, 1, Y, ALPHAS, folds, scoring="r")
    assert np.array_equal(selected.best_set, np.zeros(Y.shape[1]))
    assert np.array_equal(selected.best_alpha, single.best_alpha)
    np.testing.assert_allclose(selected.cv_score, single.cv_scores.max(0), atol=1e-7)
    np.testing.assert_allclose(selected.set_scores[0], selected.cv_score, atol=0)
    expected = single.predict(X_new)
    got = selected.predict(lambda f: X_new)
    assert np.abs(got - expected).max() / np.abs(expected).max() < 1e-5
