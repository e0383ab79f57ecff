"""End-to-end: the demo study through Snakemake, and what its outputs say about the truth.

One run of the workflow (module fixture) on the demo config serves every test here.
"""

import copy

import h5py
import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from conftest import load_demo_config, run_snakemake
from encscale.metrics import ceiling_r

pytestmark = pytest.mark.slow

FIGURES = ("data_scaling.png", "param_scaling.png", "roi_scores.png")


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("demo")
    config = load_demo_config()
    run_snakemake(workdir, config)
    run_snakemake(workdir, config, "--report", "results/demo/report.html")
    return workdir, config


def dry_run_jobs(workdir, config) -> list[tuple[str, str]]:
    """(rule, wildcards) of every job a dry run would execute."""
    out = run_snakemake(workdir, config, "-n").stdout
    jobs, rule = [], None
    for line in out.splitlines():
        line = line.strip()
        if line.startswith(("rule ", "localrule ")):
            rule = line.split()[1].rstrip(":")
            jobs.append((rule, ""))
        elif line.startswith("wildcards:") and rule:
            jobs[-1] = (rule, line.removeprefix("wildcards:").strip())
    return jobs


def test_outputs_and_report_exist(study):
    workdir, _ = study
    results = workdir / "results" / "demo"
    for name in FIGURES:
        png = (results / "figures" / name).read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    html = (results / "report.html").read_text(errors="replace")
    assert "data_scaling.png" in html and "roi_scores.png" in html
    scores = pd.read_csv(results / "scores" / "scores.tsv", sep="\t")
    assert set(scores["model"]) == set(load_demo_config()["models"])
    assert not list(results.rglob(".*.tmp-*")), "a temporary file was left behind"


def test_second_run_does_nothing(study):
    workdir, config = study
    assert dry_run_jobs(workdir, config) == []
    proc = run_snakemake(workdir, config)
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_changing_one_model_reruns_only_that_model(study):
    workdir, config = study
    changed = copy.deepcopy(config)
    changed["models"]["convnext_s"]["seed"] = 1
    jobs = dry_run_jobs(workdir, changed)
    rules = {rule for rule, _ in jobs}
    assert ("extract_features", "model=convnext_s") in jobs
    assert [w for r, w in jobs if r == "extract_features"] == ["model=convnext_s"]
    fits = [w for r, w in jobs if r == "fit_encoding"]
    assert fits and all("model=convnext_s" in w for w in fits)
    assert len(fits) == len(config["subjects"]) * config["encoding"]["n_draws"]
    assert not rules & {"simulate_demo", "prepare_stimuli", "prepare_subject"}
    assert {"collect_scores", "fit_scaling", "figure_param_scaling"} <= rules


def _truth(workdir, subject, name, ijk) -> np.ndarray:
    """A planted-truth volume of the simulator, at the prepared voxels."""
    with h5py.File(workdir / "resources" / "demo" / "truth" / f"{subject}.h5") as t:
        return t[name][()][tuple(ijk.T)]


def _responses(workdir, subject) -> tuple[np.ndarray, np.ndarray]:
    """Voxel indices and noise ceiling (%) of a prepared responses file."""
    with h5py.File(workdir / "results" / "demo" / "responses" / f"{subject}.h5") as r:
        return r["voxel_ijk"][()], r["noise_ceiling"][()]


def _chosen_depth(workdir, config, subject) -> np.ndarray:
    """Relative depth of each voxel's chosen layer, final model and size, mean over draws."""
    model, size = config["final"]["model"], config["final"]["size"]
    fits = workdir / "results" / "demo" / "fits" / subject / model
    depths = []
    for seed in range(config["encoding"]["n_draws"]):
        with h5py.File(fits / f"n{size}_s{seed}.h5") as f:
            depths.append(f["set_depth"][()][f["best_set"][()]])
    return np.mean(depths, axis=0)


def test_chosen_layer_depth_follows_planted_depth(study):
    """(a) High-SNR voxels: earliest-driven ROI picks shallower layers than the latest."""
    workdir, config = study
    # the final model is the simulator's hidden network: only it carries the planted depths
    final = config["models"][config["final"]["model"]]
    assert {k: final[k] for k in config["demo"]["hidden_model"]} == config["demo"]["hidden_model"]
    for subject in config["subjects"]:
        ijk, _ = _responses(workdir, subject)
        planted, snr = (
            _truth(workdir, subject, "depth", ijk),
            _truth(workdir, subject, "ncsnr_true", ijk),
        )
        chosen = _chosen_depth(workdir, config, subject)
        good = (snr > 1.0) & (planted > 0)
        levels = np.unique(planted[good])
        means = np.array([chosen[good & (planted == d)].mean() for d in levels])
        assert list(levels) == [1, 2, 3, 4]
        assert means[0] < means[-1], (subject, levels, means)
        assert np.all(np.diff(means) > 0), (subject, levels, means)
        rho = spearmanr(planted[good], chosen[good]).statistic
        assert rho > 0.6, (subject, rho)


def test_noise_ceiling_matches_planted(study):
    """(b) The prepared noise ceiling is within 0.02 r of the planted one on average."""
    workdir, config = study
    for subject in config["subjects"]:
        ijk, nc = _responses(workdir, subject)
        true_r = _truth(workdir, subject, "noise_ceiling_r", ijk)
        assert np.mean(np.abs(ceiling_r(nc) - true_r)) < 0.02


def test_accuracy_increases_with_training_size(study):
    """(c) In every stream ROI, mean test r grows with training size (mean over draws)."""
    workdir, config = study
    scores = pd.read_csv(workdir / "results" / "demo" / "scores" / "scores.tsv", sep="\t")
    rows = scores[
        (scores["model"] == config["scaling"]["data_model"]) & (scores["atlas"] == "streams")
    ]
    curve = rows.groupby(["roi", "size"])["r"].mean().unstack("size")
    assert len(curve) == 7
    steps = np.diff(curve.to_numpy(), axis=1)
    assert np.all(steps > 0), curve
    fits = pd.read_csv(workdir / "results" / "demo" / "scaling" / "data_scaling.tsv", sep="\t")
    assert (fits["b_lo"] > 0).all(), fits
