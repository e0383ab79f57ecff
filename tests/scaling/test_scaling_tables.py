"""The workflow's scaling tables: data and parameter scaling per ROI, and extrapolations."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from encscale.scaling.analysis import (
    EXTRAPOLATION_COLUMNS,
    FIT_COLUMNS,
    read_table,
    write_scaling_tables,
)

SUBJECTS = ["subj01", "subj02"]
ROIS = {"early": slice(0, 6), "late": slice(6, 12)}
N_VOXELS = 12
SIZES = [100, 1000, 10_000]
N_PARAMS = {"small": 10**6, "base": 10**7, "large": 10**8}
# r = a + b·log10(x) in every voxel of an ROI, draw and subject: every resample is the data
DATA_LINES = {"early": (0.05, 0.06), "late": (0.02, 0.03)}
PARAM_LINES = {"early": (-0.1, 0.05), "late": (0.0, 0.02)}
SETTINGS = {"atlas": "streams", "n_bootstrap": 20, "seed": 0, "ceiling_fractions": [0.5, 0.9]}


def voxel_r(lines: dict, x: float) -> np.ndarray:
    r = np.empty(N_VOXELS, dtype=np.float32)
    for roi, (a, b) in lines.items():
        r[ROIS[roi]] = a + b * np.log10(x)
    return r


def write_fit(path, subject: str, model: str, size: int, seed: int, test_r: np.ndarray):
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f["test_r"] = test_r
        f.attrs.update(subject=subject, model=model, n_params=N_PARAMS[model], size=size, seed=seed)
    return path


def write_responses(path, subject: str):
    with h5py.File(path, "w") as f:
        f["noise_ceiling"] = np.full(N_VOXELS, 64.0, dtype=np.float32)  # r ceiling 0.8
        for roi, cols in ROIS.items():
            mask = np.zeros(N_VOXELS, dtype=bool)
            mask[cols] = True
            f[f"rois/streams/{roi}"] = mask
        f["rois/other/everything"] = np.ones(N_VOXELS, dtype=bool)  # another atlas
        f.attrs["subject"] = subject
    return path


def test_write_scaling_tables(tmp_path):
    data_fits, param_fits, responses = [], [], []
    for subject in SUBJECTS:
        responses.append(write_responses(tmp_path / f"{subject}.h5", subject))
        for size in SIZES:
            for seed in (0, 1):
                path = tmp_path / "fits" / subject / "small" / f"n{size}_s{seed}.h5"
                data_fits.append(
                    write_fit(path, subject, "small", size, seed, voxel_r(DATA_LINES, size))
                )
        for model, n_params in N_PARAMS.items():
            path = tmp_path / "param_fits" / subject / model / "n1000_s0.h5"
            param_fits.append(
                write_fit(path, subject, model, 1000, 0, voxel_r(PARAM_LINES, n_params))
            )
    out = {name: tmp_path / "scaling" / f"{name}.tsv" for name in ("data", "param", "extra")}
    write_scaling_tables(
        data_fits,
        param_fits,
        SUBJECTS,
        responses,
        SETTINGS,
        out["data"],
        out["param"],
        out["extra"],
        families={"small": "toy", "base": "toy", "large": "toy"},
    )
    data, param, extra = (read_table(out[name]) for name in ("data", "param", "extra"))
    assert set(data["family"]) == set(param["family"]) == set(extra["family"]) == {"toy"}
    assert list(data.columns) == FIT_COLUMNS and list(extra.columns) == EXTRAPOLATION_COLUMNS
    for table, analysis, xs, lines in (
        (data, "data", SIZES, DATA_LINES),
        (param, "param", list(N_PARAMS.values()), PARAM_LINES),
    ):
        assert set(table["analysis"]) == {analysis}
        assert set(table["roi"]) == {"early", "late", "mean"}  # the streams atlas only
        assert set(table["scope"]) == {*SUBJECTS, "pooled"}
        assert set(table["law"]) == {"loglinear", "power"}
        loglinear = table[table["law"] == "loglinear"].set_index(["scope", "roi"])
        np.testing.assert_allclose(loglinear["x_min"], min(xs))
        np.testing.assert_allclose(loglinear["x_max"], max(xs))
        np.testing.assert_allclose(loglinear["ceiling_r"], 0.8, rtol=1e-6)
        for scope in (*SUBJECTS, "pooled"):
            for roi, (a, b) in lines.items():
                row = loglinear.loc[(scope, roi)]
                assert (row["a"], row["b"]) == pytest.approx((a, b), abs=1e-5)
                assert (row["b_lo"], row["b_hi"]) == pytest.approx((b, b), abs=1e-5)
            mean = loglinear.loc[(scope, "mean")]  # the mean over the ROIs' curves
            assert mean["b"] == pytest.approx(np.mean([b for _, b in lines.values()]), abs=1e-5)
    # extrapolations: the data analysis's, then the parameters', per fraction of the ceiling
    assert extra["analysis"].tolist() == sorted(extra["analysis"], key=["data", "param"].index)
    assert set(extra["analysis"]) == {"data", "param"}
    assert set(extra["analysis"]) == {"data", "param"}
    assert set(extra["fraction"]) == {0.5, 0.9}
    row = extra.query("analysis == 'data' and scope == 'pooled' and roi == 'early'")
    row = row.query("law == 'loglinear' and fraction == 0.5").iloc[0]
    a, b = DATA_LINES["early"]
    assert row["target_r"] == pytest.approx(0.4, rel=1e-5)
    assert row["x"] == pytest.approx(10 ** ((0.4 - a) / b), rel=1e-3)  # where the line is 0.4


def test_parameter_laws_are_fitted_within_each_family(tmp_path):
    """A family of two models or more gets its own law; a model of no family, or alone in
    its family, is no part of any law (the study: log-linear within a series only)."""
    lines = {"toy": {"early": (-0.1, 0.05), "late": (0.0, 0.02)}}
    lines["other"] = {"early": (0.3, -0.02), "late": (0.2, 0.01)}
    models = {"small": "toy", "large": "toy", "base": "other", "xl": "other", "lone": None}
    n_params = {**N_PARAMS, "xl": 10**9, "lone": 10**5}
    data_fits, param_fits, responses = [], [], []
    for subject in SUBJECTS:
        responses.append(write_responses(tmp_path / f"{subject}.h5", subject))
        for size in SIZES:
            path = tmp_path / "fits" / subject / "small" / f"n{size}_s0.h5"
            data_fits.append(write_fit(path, subject, "small", size, 0, voxel_r(DATA_LINES, size)))
        for model, family in models.items():
            r = voxel_r(lines[family or "toy"], n_params[model])
            path = write_fit(
                tmp_path / "p" / subject / model / "n1000_s0.h5", subject, "small", 1000, 0, r
            )
            with h5py.File(path, "a") as f:
                f.attrs.update(model=model, n_params=n_params[model])
            param_fits.append(path)
    out = {name: tmp_path / f"{name}.tsv" for name in ("data", "param", "extra")}
    families = {m: f for m, f in models.items() if f}
    write_scaling_tables(
        data_fits, param_fits, SUBJECTS, responses, SETTINGS, *out.values(), families=families
    )
    param = read_table(out["param"])
    assert set(param["family"]) == {"toy", "other"}
    loglinear = param[(param["law"] == "loglinear") & (param["scope"] == "pooled")]
    for family, xs in (("toy", [10**6, 10**8]), ("other", [10**7, 10**9])):
        rows = loglinear[loglinear["family"] == family].set_index("roi")
        assert (rows.loc["early", "x_min"], rows.loc["early", "x_max"]) == tuple(xs)
        for roi, (a, b) in lines[family].items():
            assert (rows.loc[roi, "a"], rows.loc[roi, "b"]) == pytest.approx((a, b), abs=1e-5)
    assert set(read_table(out["data"])["family"]) == {"toy"}  # the data model's family
    # no family of two: no law, and the table keeps its columns
    write_scaling_tables(data_fits, param_fits, SUBJECTS, responses, SETTINGS, *out.values())
    alone = read_table(out["param"])
    assert alone.empty and list(alone.columns) == FIT_COLUMNS
