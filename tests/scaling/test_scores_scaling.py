"""ROI scores, noise normalisation and subsampling."""

import h5py
import numpy as np
import pandas as pd
import pytest

from encscale.encoding.fit import subsample
from encscale.encoding.scores import score_fit
from encscale.metrics import algonauts_score, ceiling_r, noise_ceiling, pearson_r


def test_noise_ceiling_formula():
    # ncsnr 1 with 3 repeats: 100·1/(1 + 1/3) = 75 %, i.e. r ceiling √0.75
    np.testing.assert_allclose(noise_ceiling(np.array([1.0, 0.0]), 3), [75.0, 0.0])
    np.testing.assert_allclose(ceiling_r(np.array([75.0])), [np.sqrt(0.75)])


def test_pearson_r_matches_numpy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(50, 4)), rng.normal(size=(50, 4))
    ref = [np.corrcoef(a[:, i], b[:, i])[0, 1] for i in range(4)]
    np.testing.assert_allclose(pearson_r(a, b), ref, rtol=1e-12)
    assert pearson_r(a, np.ones((50, 4)))[0] == 0.0


def test_algonauts_score_in_percent():
    r = np.array([0.5, -0.2, 0.9, 0.3])
    nc = np.array([50.0, 40.0, 60.0, 0.0])
    np.testing.assert_allclose(algonauts_score(r, nc), [50.0, 0.0, 100.0, 100.0])


def write_score_inputs(tmp_path, r: list, nc: list, rois: dict) -> tuple:
    """A fit file with test r ``r`` and a responses file with ceilings ``nc`` (percent) and
    the streams atlas's ``rois`` {name: mask}; → (fit path, responses path)."""
    fit, resp = tmp_path / "fit.h5", tmp_path / "resp.h5"
    with h5py.File(fit, "w") as f:
        f["test_r"] = np.array(r, dtype=np.float32)
        f.attrs.update(subject="subj01", model="m", n_params=10, size=100, seed=1)
    with h5py.File(resp, "w") as f:
        f["noise_ceiling"] = np.array(nc, dtype=np.float32)
        for name, mask in rois.items():
            f[f"rois/streams/{name}"] = np.array(mask, dtype=bool)
    return fit, resp


def test_score_fit_exact_rows(tmp_path):
    rois = {"early": [1, 1, 0, 0], "ventral": [0, 0, 1, 1], "empty": [0, 0, 0, 0]}
    fit, resp = write_score_inputs(tmp_path, [0.1, 0.2, 0.3, 0.4], [25.0, 16.0, 36.0, 64.0], rois)
    df = score_fit(fit, resp).set_index("roi")
    assert list(df.index) == ["all", "early", "ventral"]
    assert df.loc["early", "n_voxels"] == 2 and df.loc["early", "subject"] == "subj01"
    np.testing.assert_allclose(df.loc["early", "r"], 0.15, rtol=1e-6)
    np.testing.assert_allclose(df.loc["early", "r_norm"], (0.1 / 0.5 + 0.2 / 0.4) / 2, rtol=1e-6)
    np.testing.assert_allclose(
        df.loc["ventral", "nn_r2"], 100 * (0.09 / 0.36 + 0.16 / 0.64) / 2, rtol=1e-5
    )


def test_r_norm_leaves_out_voxels_below_the_ceiling_threshold(tmp_path):
    """A voxel with ncsnr 0 (NC 0) used to enter r_norm as r·10⁷ and dominate its ROI."""
    rois = {"early": [1, 1, 1, 0], "low": [0, 0, 1, 1]}
    fit, resp = write_score_inputs(tmp_path, [0.1, 0.2, 0.05, 0.3], [25.0, 16.0, 0.0, 0.5], rois)
    df = score_fit(fit, resp).set_index("roi")  # default threshold: 1 % of variance
    np.testing.assert_allclose(df.loc["early", "r_norm"], (0.1 / 0.5 + 0.2 / 0.4) / 2, rtol=1e-6)
    assert df.loc["early", "n_below_ceiling"] == 1 and df.loc["early", "n_voxels"] == 3
    assert df.loc["all", "n_below_ceiling"] == 2
    assert np.isnan(df.loc["low", "r_norm"])  # every voxel below: no ratio
    np.testing.assert_allclose(df.loc["early", "r"], (0.1 + 0.2 + 0.05) / 3, rtol=1e-6)
    np.testing.assert_allclose(df.loc["early", "nn_r2"], (4.0 + 25.0 + 100.0) / 3, rtol=1e-5)
    low = score_fit(fit, resp, min_noise_ceiling=0.25).set_index("roi")
    np.testing.assert_allclose(low.loc["low", "r_norm"], 0.3 / np.sqrt(0.005), rtol=1e-6)
    assert low.loc["low", "n_below_ceiling"] == 1


def test_subsample_is_seeded_sorted_and_checked():
    a, b, c = subsample(100, 30, 0), subsample(100, 30, 0), subsample(100, 30, 1)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.all(np.diff(a) > 0) and a.max() < 100
    assert np.array_equal(subsample(100, 5, 7, mode="prefix"), np.arange(5))
    with pytest.raises(ValueError, match="larger than the 100 samples"):
        subsample(100, 101, 0)


def test_penalties_at_the_grids_edges_are_counted_and_warned(tmp_path, caplog):
    rois = {"early": [1, 1, 0, 0], "ventral": [0, 0, 1, 1]}
    fit, resp = write_score_inputs(tmp_path, [0.1, 0.2, 0.3, 0.4], [25.0, 16.0, 36.0, 64.0], rois)
    with h5py.File(fit, "a") as f:
        f["best_alpha"] = np.array([0.1, 1.0, 10.0, 10.0], dtype=np.float32)
        f.attrs["alphas"] = np.array([0.1, 1.0, 10.0])
    with caplog.at_level("WARNING", logger="encscale"):
        df = score_fit(fit, resp).set_index("roi")
    assert df.loc["all", "edge_low"] == 0.25 and df.loc["all", "edge_high"] == 0.5
    assert df.loc["early", "edge_low"] == 0.5 and df.loc["early", "edge_high"] == 0.0
    assert df.loc["ventral", "edge_high"] == 1.0
    warned = [r.getMessage() for r in caplog.records]
    assert any(
        "50.0 % of the 4 voxels with a signal chose the grid's largest penalty (10)" in m
        for m in warned
    )
    assert any(
        "25.0 % of the 4 voxels with a signal chose the grid's smallest penalty (0.1)" in m
        for m in warned
    )


def test_voxels_without_a_signal_do_not_count_at_the_edges(tmp_path, caplog):
    """Undriven voxels take the largest penalty whatever the grid: only voxels whose
    cross-validated r beats chance (3 / √size: 0.3 at size 100) count."""
    rois = {"early": [1, 1, 0, 0], "ventral": [0, 0, 1, 1]}
    fit, resp = write_score_inputs(tmp_path, [0.1, 0.2, 0.3, 0.4], [25.0, 16.0, 36.0, 64.0], rois)
    with h5py.File(fit, "a") as f:
        f["best_alpha"] = np.array([0.1, 1.0, 10.0, 10.0], dtype=np.float32)
        f["cv_score"] = np.array([0.5, 0.4, 0.35, 0.05], dtype=np.float32)  # the last: chance
        f.attrs.update(alphas=np.array([0.1, 1.0, 10.0]), scoring="r", size=100)
    with caplog.at_level("WARNING", logger="encscale"):
        df = score_fit(fit, resp).set_index("roi")
    assert df.loc["all", "n_edge_voxels"] == 3
    np.testing.assert_allclose(df.loc["all", ["edge_low", "edge_high"]], [1 / 3, 1 / 3])
    assert df.loc["ventral", "edge_high"] == 1.0 and df.loc["ventral", "n_edge_voxels"] == 1
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "33.3 % of the 3 voxels with a signal chose the grid's largest penalty" in warned
    with h5py.File(fit, "a") as f:
        f["cv_score"][...] = 0.01  # no voxel beats chance: nothing to count, no warning
    caplog.clear()
    with caplog.at_level("WARNING", logger="encscale"):
        df = score_fit(fit, resp).set_index("roi")
    assert df["edge_high"].isna().all() and (df["n_edge_voxels"] == 0).all()
    assert not caplog.records


def test_the_report_table_lists_the_fits_at_the_grids_edge(caplog):
    from encscale.encoding.scores import EDGE_COLUMNS, edge_fits

    scores = pd.DataFrame(
        dict(
            subject=["subj01", "subj01", "subj02", "subj02"],
            model="m",
            size=[100, 100, 100, 200],
            seed=0,
            atlas=["all", "streams", "all", "all"],
            roi=["all", "early", "all", "all"],
            n_edge_voxels=[50, 20, 40, 0],
            edge_low=[0.0, 0.5, 0.06, np.nan],
            edge_high=[0.05, 0.0, 0.0, np.nan],
        )
    )
    with caplog.at_level("WARNING", logger="encscale"):
        edges = edge_fits(scores)
    # subj01: 5 % is not more than 5 % (its ROI row is not the fit's); subj02 n=200: no signal
    assert list(edges.columns) == EDGE_COLUMNS and edges["subject"].tolist() == ["subj02"]
    assert "subj02 m n=100 seed 0: 6.0 % at the smallest penalty" in caplog.text


def test_an_ensemble_has_no_penalties_to_count(tmp_path, caplog):
    fit, resp = write_score_inputs(tmp_path, [0.1, 0.2], [25.0, 16.0], {})
    df = score_fit(fit, resp)
    assert df["edge_low"].isna().all() and df["edge_high"].isna().all()
