"""End-to-end: the video demo (config/demo_movies.yaml) through Snakemake, and what its
outputs say about the simulator's planted truth.

One run of the workflow (module fixture, a few minutes on 2 cores) serves every test here.
"""

import copy
import io

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import REPO, dry_run_jobs, embedded_bytes, report_items, run_snakemake
from encscale.contracts import read_fit
from encscale.encoding.fit import alpha_grid, fit_encoding
from encscale.encoding.scores import EDGE_COLUMNS
from encscale.video.grid import clips_seen, one_pass_steps, run_grid, schedule
from encscale.video.heldout import episodes

pytestmark = pytest.mark.slow

FIGURES = ("architecture", "data_size", "precision", "compute_frontier")


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("demo_movies")
    config = yaml.safe_load((REPO / "config" / "demo_movies.yaml").read_text())
    run_snakemake(workdir, config)
    run_snakemake(workdir, config, "--report", "results/demo_movies/report.html")
    return workdir, config


def grid_runs(config) -> dict:
    return run_grid(config["gpt"]["grid"], batch_size=config["gpt"]["batch_size"])


def base_run(config) -> str:
    base = config["gpt"]["grid"]["base"]
    (name,) = [n for n, point in grid_runs(config).items() if point == base]
    return name


def test_report_shows_the_video_figures_with_captions(study):
    workdir, config = study
    results = workdir / "results" / "demo_movies"
    items = report_items((results / "report.html").read_text())
    for name in FIGURES:
        png = (results / "figures" / f"{name}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
        assert b"<svg" in (results / "figures" / f"{name}.svg").read_bytes()[:2000]
        item = items[f"results/demo_movies/figures/{name}.png"]
        assert embedded_bytes(item) == png
        assert item["mime_type"] == "image/png" and len(item["caption"]) > 100
    runs = pd.read_csv(results / "training" / "runs.tsv", sep="\t")
    shown = pd.read_csv(
        io.BytesIO(embedded_bytes(items["results/demo_movies/training/runs.tsv"])),
        sep="\t",
    )
    pd.testing.assert_frame_equal(shown, runs)


def test_runs_table_follows_the_grid(study):
    workdir, config = study
    runs = pd.read_csv(
        workdir / "results" / "demo_movies" / "training" / "runs.tsv", sep="\t"
    ).set_index("run")
    grid = grid_runs(config)
    assert sorted(runs.index) == sorted(grid)
    n_codes_per_clip = 4 * 8 * 8  # 8 × 32 × 32 clips downsampled by (2, 4, 4)
    batch = config["gpt"]["batch_size"]
    for name, point in grid.items():
        row = runs.loc[name]
        assert (row.width, row.layers, row.heads, row.n_samples) == (
            point["width"],
            point["layers"],
            point["heads"],
            point["n_samples"],
        )
        assert row.schedule == schedule(point)
        assert row.steps == point.get("steps", one_pass_steps(point["n_samples"], batch))
        assert row.clips_seen == clips_seen(point, batch)
        assert row.epochs == pytest.approx(row.clips_seen / row.n_samples)
        assert row.tokens == row.clips_seen * n_codes_per_clip
        assert row.flops == pytest.approx(6 * row.n_params * row.tokens, rel=1e-5)
        assert np.isfinite(row.val_loss_heldout) and np.isfinite(row.val_loss_overlap)
    # both data-size grids: the 300 clips once (19 steps) and for the 1500's 94 steps
    equal = runs[runs.schedule == "equal_steps"]
    assert list(equal.index) == ["w64_l2_h2_n300_fp32_steps94"]
    assert runs.loc["w64_l2_h2_n300_fp32"].steps == 19
    assert runs.loc[base_run(config)].steps == equal.steps.item() == 94
    # the three precisions train the same model to the same validation loss
    base = base_run(config)
    same = runs[runs.index.str.startswith(base.rsplit("_", 1)[0] + "_")]
    assert set(same.precision) == {"fp32", "bf16", "fp16"}
    assert same.val_loss_heldout.max() - same.val_loss_heldout.min() < 0.02


def test_gpt_validates_on_clips_of_held_out_episodes(study):
    """The held-out validation clips come from episodes no training clip (of the tokenizer
    or GPT-2) comes from, and not from the test movies."""
    workdir, config = study
    tokens = workdir / "results" / "demo_movies" / "tokens"
    with h5py.File(tokens / "pretrain.h5") as f:
        train = {m.decode() for m in f["movie"][()]}
    with h5py.File(tokens / "validation.h5") as f:
        heldout = {m.decode() for m in f["movie"][()]}
        assert len(f["codes"]) == config["gpt"]["n_val"]
    assert heldout == {"friends_s01e02a", "friends_s01e02b"}
    assert train == {"friends_s01e01a", "friends_s01e01b"}
    assert not episodes(train) & episodes(heldout)
    assert not episodes(heldout) & episodes(["friends_s01e03a"])  # the test movie


def _test_r(fit_path) -> np.ndarray:
    with h5py.File(fit_path) as f:
        return f["test_r"][()]


def _driven(workdir, subject) -> np.ndarray:
    with h5py.File(workdir / "resources" / "demo_movies" / "truth" / f"{subject}.h5") as t:
        return t["driven"][()]


def _shuffled_time_fit(workdir, config, subject, model, seed, out) -> np.ndarray:
    """test r of the same fit with the training TRs' responses shuffled in time."""
    results = workdir / "results" / "demo_movies"
    shuffled = out / f"{subject}_shuffled{seed}.h5"
    with h5py.File(results / "responses" / f"{subject}.h5") as src, h5py.File(shuffled, "w") as dst:
        for name in ("train", "test"):
            src.copy(name, dst)
        y = dst["train/responses"][()]
        dst["train/responses"][...] = y[np.random.default_rng(seed).permutation(len(y))]
    a = config["encoding"]["alphas"]
    fit_encoding(
        shuffled,
        results / "features" / f"{model}.h5",
        out / f"{subject}_fit{seed}.h5",
        size=None,
        seed=0,
        n_folds=config["encoding"]["n_folds"],
        alphas=alpha_grid(a["log10_min"], a["log10_max"], a["num"]),
        pool_sizes=config["encoding"].get("pool_sizes"),
        lag_mode=config["encoding"].get("lag_mode", "fir"),
    )
    return _test_r(out / f"{subject}_fit{seed}.h5")


def test_encoding_recovers_driven_parcels_above_a_shuffled_time_baseline(study, tmp_path):
    """Held-out episode, base run: driven parcels predicted (mean r > 0.25), undriven ones not
    (|mean r| < 0.1), and the real fit far above fits on time-shuffled training responses."""
    workdir, config = study
    model = base_run(config)
    for subject in config["subjects"]:
        driven = _driven(workdir, subject)
        r = _test_r(workdir / "results" / "demo_movies" / "fits" / subject / model / "nall_s0.h5")
        assert r[driven].mean() > 0.25, r[driven]
        assert abs(r[~driven].mean()) < 0.1, r[~driven]
        null = np.array(
            [
                _shuffled_time_fit(workdir, config, subject, model, seed, tmp_path)[driven].mean()
                for seed in range(8)
            ]
        )
        # the driven parcels share features, so one shuffle's mean r over them can reach
        # ±0.25 by chance (57 test TRs); over shuffles it centres on 0
        assert abs(null.mean()) < 0.1, null
        assert r[driven].mean() > null.max() + 0.15, (r[driven].mean(), null)


def test_the_studys_penalty_grid_holds_the_demos_best_penalties(study):
    """The grid of config/cneuromod.yaml, which the demo shares: no fit has more than 5 % of
    its parcels with a signal at an edge with their score still rising, so the report's
    table has no row; some parcels do sit at an edge, on a plateau (edge_gain about 0)."""
    workdir, config = study
    study_grid = yaml.safe_load((REPO / "config" / "cneuromod.yaml").read_text())
    assert config["encoding"]["alphas"] == study_grid["encoding"]["alphas"]
    results = workdir / "results" / "demo_movies"
    edges = pd.read_csv(results / "scores" / "penalty_edges.tsv", sep="\t")
    assert list(edges.columns) == EDGE_COLUMNS and edges.empty
    scores = pd.read_csv(results / "scores" / "scores.tsv", sep="\t")
    whole = scores[(scores["atlas"] == "all") & (scores["roi"] == "all")]
    assert (whole["edge_low"] <= 0.05).all() and (whole["edge_high"] <= 0.05).all()
    at_edge = 0
    for path in (results / "fits").glob("*/*/nall_s0.h5"):
        fit = read_fit(path, ["best_alpha", "edge_gain"])
        grid = fit.attrs["alphas"]
        edge = np.isin(fit.best_alpha, np.float32([grid.min(), grid.max()]))
        at_edge += edge.sum()
        assert (fit.edge_gain[~edge] == 0).all()
    assert at_edge > 0


def test_second_run_does_nothing(study):
    workdir, config = study
    assert dry_run_jobs(workdir, config) == []


def test_adding_a_run_trains_and_fits_only_that_run(study):
    workdir, config = study
    changed = copy.deepcopy(config)
    changed["gpt"]["grid"]["heads"] = [1, 2, 4]
    jobs = dry_run_jobs(workdir, changed)
    new = "w64_l2_h4_n1500_fp32"
    assert [w for r, w in jobs if r == "train_gpt"] == [f"model={new}"]
    assert [w for r, w in jobs if r == "extract_features"] == [f"model={new}"]
    fits = [w for r, w in jobs if r == "fit_encoding"]
    assert len(fits) == len(config["subjects"]) and all(f"model={new}" in w for w in fits)
    rules = {r for r, _ in jobs}
    assert not rules & {"simulate_movies", "train_tokenizer", "tokenize_clips", "prepare_subject"}
    assert {"collect_runs", "collect_scores", "figures_video"} <= rules
