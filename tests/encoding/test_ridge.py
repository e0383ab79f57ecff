"""Tests of the ridge engine against scikit-learn and against planted truths."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import Ridge, RidgeCV

from encscale.encoding.ridge import (
    RESCORE_MARGIN,
    best_alpha_index,
    edge_gain,
    fit_ridge_cv,
    fit_ridge_cv_select,
    is_better,
    kfold_splits,
)
from encscale.metrics import pearson_r

ALPHAS = np.logspace(-2, 5, 15)


def make_problem(n: int, p: int, v: int, seed: int, n_new: int = 40):
    """Training X (n, p) float32, Y (n, v) with noise growing over targets, and new X (n_new, p)."""
    rng = np.random.default_rng(seed)
    X = (rng.standard_normal((n + n_new, p)) + rng.standard_normal(p)).astype(np.float32)
    W = rng.standard_normal((p, v)) / np.sqrt(p)
    noise = np.logspace(-1.5, 1, v)
    Y = X[:n] @ W + rng.standard_normal((n, v)) * noise + rng.standard_normal(v)
    return X[:n], Y.astype(np.float32), X[n:]


# --- folds ----------------------------------------------------------------------------------


def test_kfold_splits_validate_every_sample_once():
    for seed in (None, 3):
        folds = kfold_splits(23, 5, seed)
        assert len(folds) == 5
        val = np.concatenate([v for _, v in folds])
        assert np.array_equal(np.sort(val), np.arange(23))
        for train, v in folds:
            assert np.intersect1d(train, v).size == 0
            assert train.size + v.size == 23
    contiguous = kfold_splits(23, 5)
    assert np.array_equal(contiguous[0][1], np.arange(5))
    assert [v.size for _, v in contiguous] == [5, 5, 5, 4, 4]
    shuffled = [v for _, v in kfold_splits(23, 5, seed=3)]
    again = [v for _, v in kfold_splits(23, 5, seed=3)]
    assert all(np.array_equal(a, b) for a, b in zip(shuffled, again, strict=True))
    assert not np.array_equal(shuffled[0], contiguous[0][1])


def test_kfold_splits_reject_bad_counts():
    with pytest.raises(ValueError, match="at least 2 folds"):
        kfold_splits(10, 1)
    with pytest.raises(ValueError, match="cannot split 3 samples into 4 folds"):
        kfold_splits(3, 4)


# --- agreement with references -----------------------------------------------------------------


@pytest.mark.parametrize("p", [30, 150])
def test_leave_one_out_matches_sklearn_ridgecv(p):
    """Acceptance: same alpha as RidgeCV's exact LOO on ≥ 99 % of targets, predictions to 1e-4.

    Runs in the default float32 (scikit-learn in float64 on the same float32 data).
    """
    n = 80
    X, Y, X_new = make_problem(n, p, 200, seed=p)
    ref = RidgeCV(alphas=ALPHAS, alpha_per_target=True, fit_intercept=True)
    ref.fit(X.astype(np.float64), Y.astype(np.float64))
    res = fit_ridge_cv(X, Y, ALPHAS, kfold_splits(n, n), scoring="mse")
    same = res.best_alpha == ref.alpha_
    assert np.unique(ref.alpha_).size >= 4  # the problem exercises the choice
    assert same.mean() >= 0.99
    expected = ref.predict(X_new.astype(np.float64))
    delta = np.abs(res.predict(X_new) - expected)[:, same]
    assert delta.max() / np.abs(expected).max() < 1e-4


def brute_force_cv(X, Y, alphas, folds, scoring):
    """Mean validation score (a, v) from one scikit-learn Ridge fit per fold and alpha."""
    X, Y = X.astype(np.float64), Y.astype(np.float64)
    scores = np.zeros((len(alphas), Y.shape[1]))
    for train, val in folds:
        for i, alpha in enumerate(alphas):
            pred = Ridge(alpha=alpha, fit_intercept=True).fit(X[train], Y[train]).predict(X[val])
            if scoring == "r":
                scores[i] += pearson_r(Y[val], pred)
            else:
                scores[i] -= ((pred - Y[val]) ** 2).mean(0)
    return scores / len(folds)


def with_gaps(folds, gap):
    """The folds with the training samples within ``gap`` of a validation sample removed."""
    out = []
    for train, val in folds:
        near = np.abs(train[:, None] - val[None, :]).min(1) <= gap
        out.append((train[~near], val))
    return out


# Routes: K-fold with n − p ≥ 2·n_v (float32 leave-group-out operators), K-fold otherwise
# (float64 leave-group-out smoothers, p < n and p ≥ n), folds that leave samples out of
# training (one factorisation per fold, primal and kernel).
@pytest.mark.parametrize(
    ("p", "seed", "scoring", "gap"),
    [
        (20, None, "r", 0),
        (45, 3, "r", 0),
        (90, 7, "r", 0),
        (90, 7, "mse", 0),
        (20, None, "r", 2),
        (20, None, "mse", 2),
        (90, 7, "r", 2),
    ],
)
def test_kfold_scores_match_brute_force(p, seed, scoring, gap):
    X, Y, _ = make_problem(60, p, 30, seed=p)
    alphas = np.logspace(-1, 4, 8)
    folds = with_gaps(kfold_splits(60, 5, seed), gap)
    res = fit_ridge_cv(X, Y, alphas, folds, scoring=scoring)
    expected = brute_force_cv(X, Y, alphas, folds, scoring)
    scale = 1.0 if scoring == "r" else np.abs(expected).max()
    np.testing.assert_allclose(res.cv_scores, expected, rtol=0, atol=1e-5 * scale)
    assert np.array_equal(res.best_alpha, alphas[best_alpha_index(expected, alphas)])


def test_refit_matches_sklearn_ridge_per_target():
    X, Y, X_new = make_problem(50, 70, 12, seed=1)
    res = fit_ridge_cv(X, Y, ALPHAS, kfold_splits(50, 5), dtype=torch.float64)
    for j in range(Y.shape[1]):
        ref = Ridge(alpha=res.best_alpha[j]).fit(X.astype(np.float64), Y[:, j].astype(np.float64))
        np.testing.assert_allclose(res.coef[:, j], ref.coef_, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(res.intercept[j], ref.intercept_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(res.predict(X_new), X_new @ res.coef + res.intercept)


# --- feature-set selection -------------------------------------------------------------------


def planted_sets(n: int, widths: list[int], per_set: int, seed: int):
    """Independent feature sets (train, new samples) and Y (n, per_set · sets) planted per set."""
    rng = np.random.default_rng(seed)
    sets = [rng.standard_normal((n + 30, p)).astype(np.float32) for p in widths]
    cols = []
    for X in sets:
        w = rng.standard_normal((X.shape[1], per_set)) / np.sqrt(X.shape[1])
        cols.append(X[:n] @ w + 0.3 * rng.standard_normal((n, per_set)))
    return [X[:n] for X in sets], [X[n:] for X in sets], np.hstack(cols).astype(np.float32)


def test_selection_recovers_planted_sets_and_matches_single_set_fits():
    n, widths, per_set = 120, [8, 40, 90, 300], 25
    train, new, Y = planted_sets(n, widths, per_set, seed=5)
    folds = kfold_splits(n, 5)
    sel = fit_ridge_cv_select(train.__getitem__, len(widths), Y, ALPHAS, folds)
    planted = np.repeat(np.arange(len(widths)), per_set)
    assert (sel.best_set == planted).mean() >= 0.95
    assert np.array_equal(sel.cv_score, sel.set_scores[sel.best_set, np.arange(Y.shape[1])])
    pred = sel.predict(new.__getitem__)
    for f, cols in enumerate(sel.targets):
        assert sel.coefs[f].shape == (widths[f], cols.size)
        if cols.size == 0:
            continue
        alone = fit_ridge_cv(train[f], Y[:, cols], ALPHAS, folds)
        assert np.array_equal(alone.best_alpha, sel.best_alpha[cols])
        np.testing.assert_allclose(alone.cv_scores.max(0), sel.cv_score[cols], atol=1e-6)
        expected = alone.predict(new[f])
        np.testing.assert_allclose(pred[:, cols], expected, atol=1e-5 * np.abs(expected).max())


def test_selection_loads_one_set_at_a_time_and_skips_unchosen_refits():
    train, _, Y = planted_sets(60, [5, 10], 10, seed=2)
    Y = Y[:, :10]  # every target comes from set 0
    loaded = []

    def load(f):
        loaded.append(f)
        return train[f]

    sel = fit_ridge_cv_select(load, 2, Y, ALPHAS, kfold_splits(60, 4))
    assert np.all(sel.best_set == 0)
    assert loaded == [0, 1, 0]
    assert sel.coefs[1].shape == (10, 0)


# --- batching, ties, bad input ---------------------------------------------------------------


def test_voxel_batching_changes_nothing():
    X, Y, X_new = make_problem(70, 40, 50, seed=9)
    folds = kfold_splits(70, 5, seed=0)
    whole = fit_ridge_cv(X, Y, ALPHAS, folds)
    batched = fit_ridge_cv(X, Y, ALPHAS, folds, voxel_batch=7)
    np.testing.assert_allclose(batched.cv_scores, whole.cv_scores, rtol=0, atol=1e-6)
    assert np.array_equal(batched.best_alpha, whole.best_alpha)
    np.testing.assert_allclose(batched.predict(X_new), whole.predict(X_new), rtol=1e-5, atol=1e-5)
    sets = [X, X[:, :10]]
    sel_whole = fit_ridge_cv_select(sets.__getitem__, 2, Y, ALPHAS, folds)
    sel_batched = fit_ridge_cv_select(sets.__getitem__, 2, Y, ALPHAS, folds, voxel_batch=7)
    assert np.array_equal(sel_whole.best_set, sel_batched.best_set)
    np.testing.assert_allclose(sel_whole.set_scores, sel_batched.set_scores, rtol=0, atol=1e-6)


@pytest.mark.parametrize("p", [20, 90])  # leave-group-out route; kernel regime (p ≥ n_t)
def test_inputs_are_left_unchanged(p):
    X, Y, _ = make_problem(80, p, 15, seed=11)
    X, Y = X.astype(np.float64), Y.astype(np.float64)
    X0, Y0 = X.copy(), Y.copy()
    fit_ridge_cv(X, Y, ALPHAS, kfold_splits(80, 4), dtype=torch.float64)
    fit_ridge_cv_select([X, X[:, :5]].__getitem__, 2, Y, ALPHAS, kfold_splits(80, 4))
    assert np.array_equal(X, X0) and np.array_equal(Y, Y0)


def test_float32_and_float64_agree():
    X, Y, X_new = make_problem(60, 100, 20, seed=4)
    folds = kfold_splits(60, 4)
    r32 = fit_ridge_cv(X, Y, ALPHAS, folds)
    r64 = fit_ridge_cv(X, Y, ALPHAS, folds, dtype=torch.float64)
    assert r32.coef.dtype == np.float32 and r64.coef.dtype == np.float64
    np.testing.assert_allclose(r32.cv_scores, r64.cv_scores, atol=1e-5)
    expected = r64.predict(X_new)
    np.testing.assert_allclose(r32.predict(X_new), expected, atol=1e-5 * np.abs(expected).max())


def test_ties_prefer_larger_alpha_then_lower_set():
    scores = np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 1.0], [0.5, 2.0, 3.0 - 1e-12]])
    alphas = np.array([10.0, 100.0, 1.0])
    assert best_alpha_index(scores, alphas).tolist() == [1, 1, 0]
    best_score, best_alpha = np.ones(4), np.full(4, 10.0)
    better = is_better(
        np.array([1.0 - 1e-12, 1.0, 2.0, 1.0]),
        np.array([100.0, 10.0, 1.0, 100.0]),
        best_score,
        best_alpha,
    )
    assert better.tolist() == [False, False, True, True]


def test_near_ties_are_rescored_in_float64():
    """Targets whose two best penalties score within RESCORE_MARGIN take float64's scores at
    the penalties near their best (and so its choice); the others keep float32's."""
    X, Y, _ = make_problem(80, 300, 400, seed=9)
    alphas = np.logspace(-2, 8, 41)  # a fine grid: many flat maxima and plateaus
    folds = kfold_splits(80, 5, seed=1)
    r32 = fit_ridge_cv(X, Y, alphas, folds)
    r64 = fit_ridge_cv(X, Y, alphas, folds, dtype=torch.float64)
    top = np.sort(r64.cv_scores, axis=0)[-2:]
    near = top[1] - top[0] <= RESCORE_MARGIN
    assert 0.05 < near.mean() < 0.95, "the problem must have both kinds of targets"
    s32, s64 = r32.cv_scores[:, near], r64.cv_scores[:, near]
    close = s64 >= s64.max(0) - RESCORE_MARGIN / 2  # rescored whatever float32's rounding
    assert close.sum() > 2 * near.sum()
    np.testing.assert_allclose(s32[close], s64[close], rtol=0, atol=1e-12)
    assert np.abs(s32[~close] - s64[~close]).max() > 1e-10  # the rest: float32 work
    assert np.array_equal(r32.best_alpha, r64.best_alpha)
    far = np.abs(r32.cv_scores[:, ~near] - r64.cv_scores[:, ~near])
    assert 1e-10 < far.max() < 1e-6  # float32 work


@pytest.mark.parametrize("shape", [(300, 2000), (400, 200)])
def test_float32_chooses_float64_penalties_on_extreme_grids(shape):
    """n ≪ p and p < n, column scales over two decades, low SNR, penalties from 1e-3 to 1e12
    (far on both sides of the optimum): float32 work chooses float64's penalty on ≥ 99.9 %
    of targets. Before the fix, float32 lost the operators' variation under large penalties
    and chose penalties 5–15 decades too large on a third of the targets."""
    n, p = shape
    rng = np.random.default_rng(1)
    X = (rng.standard_normal((n, p)) * np.logspace(0, -2, p)).astype(np.float32)
    Y = X @ (0.05 * rng.standard_normal((p, 2000))) + 3 * rng.standard_normal((n, 2000))
    alphas = np.logspace(-3, 12, 31)
    folds = kfold_splits(n, 5, seed=0)
    r32 = fit_ridge_cv(X, Y.astype(np.float32), alphas, folds, dtype=torch.float32)
    r64 = fit_ridge_cv(X, Y.astype(np.float32), alphas, folds, dtype=torch.float64)
    assert (r32.best_alpha == r64.best_alpha).mean() >= 0.999
    np.testing.assert_allclose(r32.cv_scores, r64.cv_scores, atol=1e-6)


def test_edge_gain_is_the_best_score_over_the_next_penalty_inward():
    alphas = np.array([10.0, 0.1, 1.0, 0.1])  # unsorted, the smallest repeated
    scores = np.array(
        [
            [0.5, 0.1, 0.2, 0.30],  # α 10
            [0.2, 0.4, 0.3, 0.10],  # α 0.1
            [0.3, 0.3, 0.35, 0.25],  # α 1
            [0.2, 0.4, 0.3, 0.10],  # α 0.1 again: not its own neighbour
        ]
    )
    index = best_alpha_index(scores, alphas)
    np.testing.assert_allclose(edge_gain(scores, alphas, index), [0.2, 0.1, 0.0, 0.05], atol=1e-7)
    assert not edge_gain(scores[:1], alphas[:1], np.zeros(4, int)).any()


def test_edge_voxels_on_a_plateau_do_not_count_and_a_narrow_grid_warns():
    """Features whose scales span 10⁵ and targets from the top directions alone to all of
    them, from noiseless to noisy: on the grid 1e-6 … 1e12 some voxels with a signal choose
    an edge, on the plateaus of either limit, none counts, and a float64 fit over 1e-12 …
    1e14 raises no uncounted one by EDGE_GAIN; on 0.1 … 1000 more than EDGE_WARNING count."""
    from encscale.encoding.scores import (
        EDGE_GAIN,
        EDGE_WARNING,
        driven_voxels,
        open_edges,
        penalty_edges,
    )

    rng = np.random.default_rng(0)
    n, p, v = 400, 30, 300
    scales = np.logspace(-3, 2, p)
    X = (rng.standard_normal((n, p)) * scales).astype(np.float32)
    W = rng.standard_normal((p, v))
    W[:, :100] *= scales[:, None] > 1
    W /= np.sqrt((X.astype(np.float64) @ W).var(0))
    noise = rng.permutation(np.logspace(-2, 1.3, v))
    Y = (X @ W + rng.standard_normal((n, v)) * noise).astype(np.float32)
    folds = kfold_splits(n, 5)
    wider = fit_ridge_cv(X, Y, np.logspace(-12, 14, 53), folds, dtype=torch.float64)
    shares = {}
    for grid in (np.logspace(-6, 12, 37), np.logspace(-1, 3, 9)):
        sel = fit_ridge_cv_select([X].__getitem__, 1, Y, grid, folds)
        low, high = penalty_edges(sel.best_alpha, grid, v)
        open_low, open_high = open_edges(low, high, sel.edge_gain, grid, sel.cv_score, "r")
        driven = driven_voxels(sel.cv_score, "r", n)
        at_edge, counted = (low + high > 0) & driven, (open_low + open_high > 0) & driven
        shares[grid[0]] = at_edge.mean(), counted.sum() / driven.sum()
        if grid[0] == 1e-6:
            assert at_edge.sum() >= 5 and not counted.any()
            gained = wider.cv_scores.max(0) - sel.cv_score
            assert gained[at_edge].max() < EDGE_GAIN
    assert shares[0.1][1] > EDGE_WARNING


def test_duplicate_alphas_and_identical_sets():
    X, Y, _ = make_problem(50, 20, 15, seed=3)
    folds = kfold_splits(50, 5)
    dup = fit_ridge_cv(X, Y, np.r_[ALPHAS, ALPHAS[::-1]], folds)
    plain = fit_ridge_cv(X, Y, ALPHAS, folds)
    assert np.array_equal(dup.best_alpha, plain.best_alpha)
    other = np.random.default_rng(0).standard_normal(X.shape).astype(np.float32)
    sets = [other, X, X.copy()]
    sel = fit_ridge_cv_select(sets.__getitem__, 3, Y, ALPHAS, folds)
    assert np.array_equal(sel.set_scores[1], sel.set_scores[2])
    assert not np.any(sel.best_set == 2)
    assert np.array_equal(sel.best_alpha[sel.best_set == 1], plain.best_alpha[sel.best_set == 1])


@pytest.mark.parametrize("scoring", ["r", "mse"])
def test_constant_targets_warn_and_take_the_largest_alpha(scoring):
    X, Y, X_new = make_problem(40, 10, 6, seed=8)
    Y[:, [1, 4]] = 2.5
    with pytest.warns(UserWarning, match="2 of 6 columns of Y are constant"):
        res = fit_ridge_cv(X, Y, ALPHAS, kfold_splits(40, 4), scoring=scoring)
    assert np.all(res.best_alpha[[1, 4]] == ALPHAS.max())
    assert np.all(res.coef[:, [1, 4]] == 0)
    np.testing.assert_allclose(res.predict(X_new)[:, [1, 4]], 2.5)
    if scoring == "r":
        assert np.all(res.cv_scores[:, [1, 4]] == 0)


def test_bad_input_raises_clear_errors():
    X, Y, _ = make_problem(30, 5, 3, seed=0)
    folds = kfold_splits(30, 3)
    bad_X = X.copy()
    bad_X[[0, 3], 1] = np.nan
    with pytest.raises(ValueError, match="X contains 2 NaN/inf"):
        fit_ridge_cv(bad_X, Y, ALPHAS, folds)
    bad_Y = Y.copy()
    bad_Y[5, 0] = np.inf
    with pytest.raises(ValueError, match="Y contains 1 NaN/inf"):
        fit_ridge_cv(X, bad_Y, ALPHAS, folds)
    for alphas in ([1.0, 0.0], [1.0, -2.0], [np.nan], [np.inf], []):
        with pytest.raises(ValueError, match="alphas must be"):
            fit_ridge_cv(X, Y, alphas, folds)
    with pytest.raises(ValueError, match="X has 30 rows .* Y has 29"):
        fit_ridge_cv(X, Y[:29], ALPHAS, folds)
    with pytest.raises(ValueError, match="Y must be 2-D"):
        fit_ridge_cv(X, Y[:, 0], ALPHAS, folds)
    with pytest.raises(ValueError, match="at least 2 folds"):
        fit_ridge_cv(X, Y, ALPHAS, folds[:1])
    with pytest.raises(ValueError, match="scoring must be one of"):
        fit_ridge_cv(X, Y, ALPHAS, folds, scoring="r2")
    with pytest.raises(ValueError, match="leave-one-out"):
        fit_ridge_cv(X, Y, ALPHAS, kfold_splits(30, 30), scoring="r")
    with pytest.raises(ValueError, match="outside 0..29"):
        fit_ridge_cv(X, Y, ALPHAS, [(np.arange(1, 31), np.arange(1))] * 2, scoring="mse")
    with pytest.raises(ValueError, match="feature set 1 has 29 rows"):
        fit_ridge_cv_select([X, X[:29]].__getitem__, 2, Y, ALPHAS, folds)
    with pytest.raises(ValueError, match="X of feature set 0 contains 2 NaN/inf"):
        fit_ridge_cv_select([bad_X].__getitem__, 1, Y, ALPHAS, folds)
    with pytest.raises(ValueError, match="voxel_batch must be at least 1"):
        fit_ridge_cv(X, Y, ALPHAS, folds, voxel_batch=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    X, Y, X_new = make_problem(200, 300, 500, seed=11)
    folds = kfold_splits(200, 5)
    cpu = fit_ridge_cv(X, Y, ALPHAS, folds)
    gpu = fit_ridge_cv(X, Y, ALPHAS, folds, device="cuda")
    np.testing.assert_allclose(gpu.cv_scores, cpu.cv_scores, atol=1e-5)
    assert (gpu.best_alpha == cpu.best_alpha).mean() >= 0.99
    sets = [X, X[:, :50]]
    sel_cpu = fit_ridge_cv_select(sets.__getitem__, 2, Y, ALPHAS, folds)
    sel_gpu = fit_ridge_cv_select(sets.__getitem__, 2, Y, ALPHAS, folds, device="cuda")
    assert (sel_gpu.best_set == sel_cpu.best_set).mean() >= 0.99
    expected = cpu.predict(X_new)
    same = gpu.best_alpha == cpu.best_alpha
    delta = np.abs(gpu.predict(X_new) - expected)[:, same]
    assert delta.max() < 1e-4 * np.abs(expected).max()
