"""Scaling laws: exact and robust fits, bootstrap intervals that cover planted parameters,
model comparison and extrapolation; the tables of the scaling analysis."""

import numpy as np
import pytest

from encscale.scaling import laws
from encscale.scaling.analysis import (
    Part,
    bootstrap_curves,
    fit_laws,
    geometric_sizes,
    scaling_tables,
)

X = np.geomspace(100, 10000, 7)
POWER = dict(r_inf=0.6, A=3.0, alpha=0.5)
LOGLINEAR = dict(a=0.05, b=0.1)


def power(x, r_inf=0.6, A=3.0, alpha=0.5):
    return r_inf - A * np.asarray(x, dtype=float) ** -alpha


def loglinear(x, a=0.05, b=0.1):
    return a + b * np.log10(x)


def test_loglinear_fit_matches_polyfit_per_curve():
    rng = np.random.default_rng(0)
    y = loglinear(X) + rng.normal(0, 0.01, (5, X.size))
    a, b = laws.fit_loglinear(X, y)
    for i in range(5):
        b_ref, a_ref = np.polyfit(np.log10(X), y[i], 1)
        assert a[i] == pytest.approx(a_ref, abs=1e-12) and b[i] == pytest.approx(b_ref, abs=1e-12)


@pytest.mark.parametrize(
    "truth", [POWER, dict(r_inf=0.3, A=0.8, alpha=0.25), dict(r_inf=0.7, A=20.0, alpha=1.0)]
)
def test_power_law_fit_recovers_noiseless_curves(truth):
    law = laws.fit_power_law(X, power(X, **truth)[None], ceiling=0.8)
    assert law.r_inf[0] == pytest.approx(truth["r_inf"], abs=1e-5)
    assert law.A[0] == pytest.approx(truth["A"], rel=1e-3)
    assert law.alpha[0] == pytest.approx(truth["alpha"], abs=1e-4)
    assert law.r_inf[0] < 0.8 and law.gap[0] == pytest.approx(0.8 - law.r_inf[0])


def test_power_law_stays_below_the_ceiling():
    # the curve heads above the ceiling: r∞ is held just under it
    law = laws.fit_power_law(X, power(X, r_inf=0.9)[None], ceiling=0.7)
    assert law.r_inf[0] < 0.7


def test_huber_loss_shrugs_off_an_outlier():
    y = power(X)
    y[3] -= 0.08  # one point far off the curve
    robust = laws.fit_power_law(X, y[None], ceiling=0.8)
    squared = laws.fit_power_law(X, y[None], ceiling=0.8, delta=10.0)  # plain least squares
    assert abs(robust.r_inf[0] - 0.6) < 1e-3 and abs(robust.alpha[0] - 0.5) < 5e-3
    assert abs(squared.r_inf[0] - 0.6) > 5 * abs(robust.r_inf[0] - 0.6)


def test_warm_started_fits_match_grid_fits():
    rng = np.random.default_rng(1)
    y = power(X) + rng.normal(0, 0.004, (40, X.size))
    grid = laws.fit_power_law(X, y, 0.8)
    warm = laws.fit_power_law(X, y, 0.8, start=laws.fit_power_law(X, y[:1], 0.8))
    assert np.all(warm.loss <= grid.loss * (1 + 1e-3) + 1e-9)
    np.testing.assert_allclose(warm.r_inf, grid.r_inf, atol=2e-3)


def test_extrapolation_inverts_each_law():
    law = laws.fit_power_law(X, power(X)[None], ceiling=0.8)
    x = laws.size_to_reach_power(law, 0.55)
    assert law.predict(x)[0, 0] == pytest.approx(0.55, abs=1e-9)
    assert x[0] == pytest.approx((3.0 / 0.05) ** 2, rel=1e-3)  # exact: (A / (r∞ − r))^(1/α)
    assert np.isinf(laws.size_to_reach_power(law, 0.65)[0])  # beyond r∞: never
    a, b = np.array([0.05]), np.array([0.1])
    assert laws.size_to_reach_loglinear(a, b, 0.45)[0] == pytest.approx(1e4)
    assert np.isinf(laws.size_to_reach_loglinear(a, -b, 0.45)[0])


def test_aic_prefers_the_law_that_made_the_data():
    rng = np.random.default_rng(2)
    wins = {"power": 0, "loglinear": 0}
    for make in ("power", "loglinear"):
        for _ in range(20):
            y = (power(X) if make == "power" else loglinear(X)) + rng.normal(0, 0.003, X.size)
            curve = np.repeat(y[None], 2, axis=0)
            rows, _ = fit_laws(X, curve, np.full(2, 0.8), (), 0.95)
            best = min(rows, key=lambda r: r["aic"])["law"]
            wins[make] += best == make
    assert wins["power"] >= 18 and wins["loglinear"] >= 15


def _voxel_parts(curve, rng, n_vox=300, n_draws=3, ceiling=0.8):
    """Per-voxel r around ``curve``: a voxel offset (mean 0) and draw noise."""
    offset = rng.normal(0, 0.05, n_vox)
    r = curve[:, None, None] + offset + rng.normal(0, 0.05, (curve.size, n_draws, n_vox))
    return [Part(r.astype(np.float32), np.full(n_vox, ceiling))]


def test_bootstrap_intervals_cover_planted_parameters():
    """Parameters within their 95 % intervals in >= 90 % of 20 seeded repeats, per law."""
    covered = {f"power:{k}": 0 for k in POWER} | {f"loglinear:{k}": 0 for k in LOGLINEAR}
    widths = []
    for seed in range(20):
        rng = np.random.default_rng(seed)
        for law, curve, truth in (
            ("power", power(X), POWER),
            ("loglinear", loglinear(X), LOGLINEAR),
        ):
            scopes = bootstrap_curves({"s1": _voxel_parts(curve, rng)}, n_boot=1000, seed=seed)
            rows, _ = fit_laws(X, *scopes["s1"], (), 0.95)
            row = next(r for r in rows if r["law"] == law)
            for name, value in truth.items():
                covered[f"{law}:{name}"] += row[f"{name}_lo"] <= value <= row[f"{name}_hi"]
            if law == "power":
                widths.append(row["alpha_hi"] - row["alpha_lo"])
    assert all(n >= 18 for n in covered.values()), covered
    assert np.median(widths) < 0.3  # informative intervals, not everything-covers


def test_bootstrap_resamples_voxels_and_draws_seeded():
    rng = np.random.default_rng(0)
    parts = {"s1": _voxel_parts(power(X), rng), "s2": _voxel_parts(power(X), rng)}
    one = bootstrap_curves(parts, n_boot=50, seed=3)
    two = bootstrap_curves(parts, n_boot=50, seed=3)
    assert set(one) == {"s1", "s2", "pooled"}
    np.testing.assert_array_equal(one["pooled"][0], two["pooled"][0])
    y, c = one["s1"]
    assert y.shape == (51, X.size) and c.shape == (51,)
    np.testing.assert_allclose(y[0], parts["s1"][0].r.mean(axis=(1, 2)), rtol=1e-6)
    np.testing.assert_allclose(one["pooled"][0], (one["s1"][0] + one["s2"][0]) / 2)
    assert y[1:].std(axis=0).min() > 0  # resamples differ


def test_scaling_tables_per_roi_scope_and_extrapolation():
    rng = np.random.default_rng(0)
    curves = {
        "early": {"s1": _voxel_parts(power(X), rng), "s2": _voxel_parts(power(X), rng)},
        "ventral": {"s1": _voxel_parts(power(X, 0.4), rng), "s2": _voxel_parts(power(X, 0.4), rng)},
    }
    fits, extra = scaling_tables(
        "data", X, curves, ceiling_known=True, n_boot=1000, seed=0, fractions=[0.7]
    )
    assert len(fits) == 2 * 3 * 2  # ROI × scope (s1, s2, pooled) × law
    pooled = fits[(fits.scope == "pooled") & (fits.law == "power")].set_index("roi")
    assert pooled.loc["ventral", "r_inf"] == pytest.approx(0.4, abs=0.02)
    assert (pooled["r_inf"] < pooled["ceiling_r"]).all()
    e = extra[(extra.scope == "pooled") & (extra.law == "power")].set_index("roi")
    assert e.loc["early", "target_r"] == pytest.approx(0.56, abs=1e-3)
    assert e.loc["early", "x"] == pytest.approx((3.0 / 0.04) ** 2, rel=0.3)
    assert e.loc["early", "x_lo"] <= e.loc["early", "x"] <= e.loc["early", "x_hi"]
    assert np.isinf(e.loc["ventral", "x"])  # r∞ 0.4 never reaches 0.56
    unknown, none = scaling_tables(
        "data", X, curves, ceiling_known=False, n_boot=1000, seed=0, fractions=[0.7]
    )
    assert none.empty and len(unknown) == len(fits)


def test_two_models_give_only_the_loglinear_law():
    rng = np.random.default_rng(0)
    x = np.array([1e6, 1e7])
    rows, _ = fit_laws(x, rng.normal(0.3, 0.01, (11, 2)), np.full(11, 0.8), (0.9,), 0.95)
    assert [r["law"] for r in rows] == ["loglinear"]


def test_geometric_sizes():
    assert geometric_sizes(100, 10000, 5) == [100, 316, 1000, 3162, 10000]
    with pytest.raises(ValueError, match="round to duplicates"):
        geometric_sizes(10, 12, 5)
    with pytest.raises(ValueError, match="0 < min < max"):
        geometric_sizes(500, 100, 3)
