"""End-to-end: the demo study through Snakemake, and what its outputs say about the truth.

One run of the workflow (module fixture) on the demo config serves every test here.
"""

import copy
import io
import re
from importlib.metadata import version

import h5py
import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from scipy.stats import spearmanr

import encscale
from conftest import (
    dry_run_jobs,
    embedded_bytes,
    job_counts,
    load_demo_config,
    report_items,
    run_snakemake,
)
from encscale.metrics import ceiling_r
from encscale.provenance import read_provenance

pytestmark = pytest.mark.slow

FIGURES = ("data_scaling.png", "param_scaling.png", "roi_scores.png")
VECTOR = ("data_scaling.svg", "param_scaling.svg", "roi_scores.svg")


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("demo")
    config = load_demo_config()
    run_snakemake(workdir, config)
    run_snakemake(workdir, config, "--report", "results/demo/report.html")
    return workdir, config


def test_outputs_and_report_exist(study):
    workdir, _ = study
    results = workdir / "results" / "demo"
    for name in FIGURES:
        png = (results / "figures" / name).read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    for name in VECTOR:
        assert b"<svg" in (results / "figures" / name).read_bytes()[:2000]
    html = (results / "report.html").read_text(errors="replace")
    assert "data_scaling.png" in html and "roi_scores.png" in html
    scores = pd.read_csv(results / "scores" / "scores.tsv", sep="\t")
    assert set(scores["model"]) == {*load_demo_config()["models"], "ensemble"}
    assert not list(results.rglob(".*.tmp-*")), "a temporary file was left behind"


def assert_contains(full: dict, part: dict, where: str = "config") -> None:
    """Every key of ``part`` is in ``full`` with the same value (nested dicts: recursively)."""
    for key, value in part.items():
        assert key in full, f"{where}.{key} is missing"
        if isinstance(value, dict):
            assert_contains(full[key], value, f"{where}.{key}")
        else:
            assert full[key] == value, f"{where}.{key}: {full[key]!r} != {value!r}"


def test_report_embeds_figures_config_and_provenance(study):
    workdir, config = study
    results = workdir / "results" / "demo"
    html = (results / "report.html").read_text()
    items = report_items(html)
    maps = [f"brain_maps/{s}_{m}.png" for s in config["subjects"] for m in ("accuracy", "slope")]
    for name in (*FIGURES, *maps):
        item = items[f"results/demo/figures/{name}"]
        assert embedded_bytes(item) == (results / "figures" / name).read_bytes()
        assert item["mime_type"] == "image/png" and len(item["caption"]) > 100

    tables = ("scores/scores.tsv", *(f"scaling/{n}.tsv" for n in ("data_scaling", "param_scaling")))
    for name in (*tables, "scaling/extrapolation.tsv"):
        item = items[f"results/demo/{name}"]
        assert embedded_bytes(item) == (results / name).read_bytes()
        assert len(item["caption"]) > 200 and item["labels"]["table"], (name, item["labels"])

    shown = yaml.safe_load(embedded_bytes(items["results/demo/provenance/config.yaml"]))
    assert_contains(shown, config)  # the config as run: the study's own keys, defaults added
    assert shown["encoding"]["sizes"] == config["encoding"]["sizes"]
    assert shown["scaling"]["data_model"] == list(config["models"])[-1]  # a filled default

    software = pd.read_csv(
        io.BytesIO(embedded_bytes(items["results/demo/provenance/software.tsv"])), sep="\t"
    )
    versions = {(r.rule, r.package): r.version for r in software.itertuples()}
    assert versions[("extract_features", "torch")] == version("torch")
    assert versions[("extract_features", "timm")] == version("timm")
    assert versions[("workflow", "snakemake")] == version("snakemake")
    assert (("fit_subject_model", "cuda") in versions) == torch.cuda.is_available()
    n_fits = len([p for p in (results / "fits").rglob("*.h5") if p.parent.name != "ensemble"])
    enc = config["encoding"]
    assert (
        n_fits
        == len(config["subjects"]) * len(config["models"]) * len(enc["sizes"]) * (enc["n_draws"])
    )  # one job per subject × model writes every size × draw
    torch_files = software.query("rule == 'fit_subject_model' and package == 'torch'")
    assert torch_files.n_files.item() == n_fits

    runtimes = pd.read_csv(
        io.BytesIO(embedded_bytes(items["results/demo/provenance/runtimes.tsv"])), sep="\t"
    ).set_index("rule")
    assert runtimes.loc["fit_subject_model", "jobs"] == len(config["subjects"]) * len(
        config["models"]
    )
    assert runtimes.loc["extract_features", "jobs"] == len(config["models"])
    assert (runtimes["total_s"] > 0).all() and (runtimes["max_rss_mb"] > 0).all()

    graph = re.search(r"var rulegraph_spec = (\{.*?\});\n", html)
    for rule in ("extract_features", "fit_subject_model", "figure_data_scaling", "study_config"):
        assert f'"rule": "{rule}"' in graph.group(1)


def test_every_hdf5_output_records_what_made_it(study):
    workdir, config = study
    results = workdir / "results" / "demo"
    model = config["final"]["model"]
    fit = read_provenance(results / "fits" / "subj01" / model / f"n{config['final']['size']}_s0.h5")
    assert fit["rule"] == "fit_subject_model" and fit["version"] == encscale.__version__
    assert fit["wildcards"] == {"subject": "subj01", "model": model}
    enc = config["encoding"]
    assert fit["config"]["settings"]["alphas"] == enc["alphas"]
    assert fit["config"]["settings"]["n_folds"] == enc["n_folds"]
    assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?", fit["git"])
    for model, spec in config["models"].items():
        feats = read_provenance(results / "features" / f"{model}.h5")
        assert feats["rule"] == "extract_features" and feats["wildcards"] == {"model": model}
        assert_contains(feats["config"]["spec"], spec)
        assert feats["config"]["storage"] == config["features"]["storage"]
        assert feats["software"]["timm"] == version("timm")
    for subject in config["subjects"]:
        resp = read_provenance(results / "responses" / f"{subject}.h5")
        assert resp["rule"] == "prepare_subject"
        assert resp["config"]["atlases"] == config["prepare"]["atlases"]
    assert read_provenance(results / "stimuli.h5")["config"]["subjects"] == config["subjects"]
    ens = read_provenance(next((results / "fits" / "subj01" / "ensemble").glob("*.h5")))
    assert ens["rule"] == "ensemble_fit" and ens["config"]["members"] == list(config["models"])
    truth = read_provenance(workdir / "resources" / "demo" / "truth" / "subj01.h5")
    assert truth["rule"] == "simulate_demo"
    assert_contains(truth["config"]["sim"], config["demo"])


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
    fits = [w for r, w in jobs if r == "fit_subject_model"]
    assert sorted(fits) == sorted(f"subject={s}, model=convnext_s" for s in config["subjects"])
    # convnext_s is a member of the ensemble: the ensemble's fits at the parameter-scaling
    # and final sizes follow
    sizes = {config["scaling"]["param_size"], config["final"]["size"]}
    ensembles = [w for r, w in jobs if r == "ensemble_fit"]
    assert len(ensembles) == len(config["subjects"]) * config["encoding"]["n_draws"] * len(sizes)
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
    loglinear = fits[fits["law"] == "loglinear"]  # one of the two laws of every ROI × scope
    assert len(loglinear) == len(fits) / 2 > 0 and (loglinear["b_lo"] > 0).all(), fits


def test_saturating_laws_stay_below_the_noise_ceiling(study):
    """Each ROI's fitted r∞ (pooled and per subject) is below its mean noise ceiling, which
    is the mean over the ROI's voxels of the prepared ceiling; extrapolations are written."""
    workdir, config = study
    results = workdir / "results" / "demo"
    fits = pd.read_csv(results / "scaling" / "data_scaling.tsv", sep="\t")
    power = fits[fits["law"] == "power"]
    rois = set(power["roi"]) - {"mean"}
    assert len(rois) == 7 and set(power["scope"]) == {*config["subjects"], "pooled"}
    assert (power["r_inf"] < power["ceiling_r"]).all(), power
    for subject in config["subjects"]:
        with h5py.File(results / "responses" / f"{subject}.h5") as h5:
            nc = h5["noise_ceiling"][()]
            for roi in rois:
                mask = h5[f"rois/streams/{roi}"][()]
                row = power[(power["scope"] == subject) & (power["roi"] == roi)].iloc[0]
                assert row.ceiling_r == pytest.approx(ceiling_r(nc[mask]).mean(), rel=1e-5)
                assert row.r_inf < row.ceiling_r
                assert row.r_inf_lo <= row.r_inf <= row.r_inf_hi
    assert (fits.groupby(["scope", "roi"])["preferred"].sum() == 1).all()
    extra = pd.read_csv(results / "scaling" / "extrapolation.tsv", sep="\t")
    fractions = config["scaling"].get("ceiling_fractions", [0.8, 0.9, 0.95])
    assert set(extra["fraction"]) == set(fractions)
    assert set(extra["analysis"]) == {"data", "param"}
    pooled = extra[(extra["scope"] == "pooled") & (extra["analysis"] == "data")]
    assert len(pooled) == 8 * 2 * len(fractions)  # (7 ROIs + mean) × law × fraction
    reached = pooled[np.isfinite(pooled["x"])]
    assert not reached.empty and (reached["x_lo"] <= reached["x_hi"]).all()


def test_brain_maps_are_volumes_of_the_prepared_voxels(study):
    workdir, config = study
    results = workdir / "results" / "demo"
    for subject in config["subjects"]:
        with h5py.File(results / "responses" / f"{subject}.h5") as h5:
            mask, affine, ijk = h5["mask"][()], h5["affine"][()], h5["voxel_ijk"][()]
        fits = results / "fits" / subject / config["final"]["model"]
        r = []
        for seed in range(config["encoding"]["n_draws"]):
            with h5py.File(fits / f"n{config['final']['size']}_s{seed}.h5") as f:
                r.append(f["test_r"][()])
        for name in ("accuracy", "slope"):
            img = nib.load(results / "maps" / subject / f"{name}.nii.gz")
            data = np.asarray(img.dataobj)
            assert data.shape == mask.shape and np.allclose(img.affine, affine)
            assert np.array_equal(data != 0, mask), (subject, name)
            if name == "accuracy":
                np.testing.assert_allclose(data[tuple(ijk.T)], np.mean(r, axis=0), rtol=1e-6)
            else:  # accuracy grows with training data in most voxels
                assert np.mean(data[mask] > 0) > 0.8
            for ext in ("png", "svg"):
                assert (
                    results / "figures" / "brain_maps" / f"{subject}_{name}.{ext}"
                ).stat().st_size > 10_000


def test_ensemble_is_scored_and_at_least_its_members_mean(study):
    """Averaging predictions should not hurt: per ROI (every atlas), the ensemble's mean r is
    at least the mean of its members' (same subjects, sizes and draws)."""
    workdir, config = study
    scores = pd.read_csv(workdir / "results" / "demo" / "scores" / "scores.tsv", sep="\t")
    ens = scores[scores["model"] == "ensemble"]
    assert set(ens["size"]) == {config["scaling"]["param_size"], config["final"]["size"]}
    assert (
        ens["n_params"]
        == scores.drop_duplicates("model").query("model != 'ensemble'")["n_params"].sum()
    ).all()
    keys = ["subject", "size", "seed", "atlas", "roi"]
    members = (
        scores[scores["model"].isin(config["models"])].groupby(keys)["r"].agg(["mean", "size"])
    )
    both = ens.set_index(keys)[["r"]].join(members, how="inner")
    assert len(both) == len(ens) and (both["size"] == len(config["models"])).all()
    worse = both[both["r"] < both["mean"]]
    assert worse.empty, f"the ensemble is below its members' mean on:\n{worse}"


def prepared_config(study_dir, config) -> dict:
    """The demo study over the demo's prepared files as a lab's own dataset ``mylab``."""
    results = study_dir / "results" / "demo"
    config = copy.deepcopy(config)
    del config["demo"]
    config["dataset"] = "mylab"
    config["prepared"] = {
        "stimuli": str(results / "stimuli.h5"),
        "responses": str(results / "responses" / "{subject}.h5"),
    }
    return config


def test_a_labs_prepared_files_fit_as_the_built_in_dataset_does(study, tmp_path):
    workdir, config = study
    lab = prepared_config(workdir, config)
    counts = job_counts(run_snakemake(tmp_path, lab, "-n").stdout)
    assert counts["prepare_subject"] == 2 and counts["extract_features"] == 3
    assert "simulate_demo" not in counts and counts["figure_brain_map"] == 4  # a volume
    fit = "fits/subj01/convnext_l/n100_s0.h5"
    run_snakemake(tmp_path, lab, f"results/mylab/{fit}")
    ours, theirs = tmp_path / "results" / "mylab" / fit, workdir / "results" / "demo" / fit
    with h5py.File(ours) as a, h5py.File(theirs) as b:
        for key in ("best_set", "best_alpha", "test_r", "test_pred"):
            np.testing.assert_array_equal(a[key][()], b[key][()])
    log = (tmp_path / "logs" / "mylab" / "prepare_subject" / "subj01.log").read_text()
    assert "job end: rule prepare_subject ok" in log


def test_a_labs_malformed_file_stops_its_job_naming_every_problem(study, tmp_path):
    workdir, config = study
    lab = prepared_config(workdir, config)
    broken = tmp_path / "lab" / "subj01.h5"
    broken.parent.mkdir()
    broken.write_bytes((workdir / "results" / "demo" / "responses" / "subj01.h5").read_bytes())
    with h5py.File(broken, "a") as h5:
        h5["test/responses"][0, :3] = np.nan
        del h5["noise_ceiling"]
    lab["subjects"] = ["subj01"]
    lab["prepared"]["responses"] = str(broken.parent / "{subject}.h5")
    proc = run_snakemake(tmp_path, lab, "results/mylab/responses/subj01.h5", check=False)
    assert proc.returncode != 0
    log = (tmp_path / "logs" / "mylab" / "prepare_subject" / "subj01.log").read_text()
    assert "dataset 'noise_ceiling' is missing" in log
    assert "dataset 'test/responses' holds NaN or inf" in log
    assert not (tmp_path / "results" / "mylab" / "responses").exists() or not list(
        (tmp_path / "results" / "mylab" / "responses").iterdir()
    )
    # planning already names a missing file, and a dataset without its files
    lab["prepared"]["responses"] = str(tmp_path / "absent" / "{subject}.h5")
    proc = run_snakemake(tmp_path, lab, "-n", check=False)
    assert "config key 'prepared.responses': subject subj01:" in proc.stdout + proc.stderr
    del lab["prepared"]
    proc = run_snakemake(tmp_path, lab, "-n", check=False)
    assert "config key 'prepared': dataset 'mylab' is not built in" in proc.stdout + proc.stderr


def test_store_none_fits_as_the_features_file_does_without_writing_one(study, tmp_path):
    """features.store none, and encoding.predictions needed: fits equal to the demo's, no
    features written, test predictions kept only at the ensemble's sizes (350, 700)."""
    workdir, config = study
    config = copy.deepcopy(config)
    config["features"].update(store="none", group_memory_mb=1)  # a forward pass per layer
    config["encoding"]["predictions"] = "needed"
    run_snakemake(tmp_path, config, "results/demo/fits/subj01/ensemble/n350_s0.h5")
    results = tmp_path / "results" / "demo"
    assert not (results / "features").exists()
    for fit in ("convnext_l/n100_s0.h5", "convnext_l/n350_s0.h5", "ensemble/n350_s0.h5"):
        path = f"fits/subj01/{fit}"
        with h5py.File(results / path) as a, h5py.File(workdir / "results" / "demo" / path) as b:
            for key in ("best_set", "best_alpha") if "ensemble" not in fit else ():
                np.testing.assert_array_equal(a[key][()], b[key][()])
            np.testing.assert_allclose(a["test_r"][()], b["test_r"][()], atol=1e-5)
            if "n100" in fit:
                assert "test_pred" not in a and a["set_scores"].dtype == np.float16
                continue
            scale = np.abs(b["test_pred"][()]).max()
            np.testing.assert_allclose(a["test_pred"][()], b["test_pred"][()], atol=1e-5 * scale)
    log = (
        tmp_path / "logs" / "demo" / "fit_subject_model" / "subj01" / "convnext_l.log"
    ).read_text()
    assert "(forward pass 4)" in log and "(forward pass 5)" not in log  # the 4 stages
