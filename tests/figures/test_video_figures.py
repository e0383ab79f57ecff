"""The video study's figures: sweeps, precision speed-ups, the Pareto front and the plots."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.lines import Line2D

from encscale.figures import video as vf

BASE = {"width": 64, "layers": 2, "heads": 2, "n_samples": 1000, "precision": "fp32"}
TOKENS_PER_CLIP = 64
VOCAB = 512
# run: (width, layers, heads, n_samples, precision, mean r over subjects, tokens/s)
GRID = {
    "base": (64, 2, 2, 1000, "fp32", 0.200, 1000.0),
    "w32": (32, 2, 2, 1000, "fp32", 0.150, 1000.0),
    "w128": (128, 2, 2, 1000, "fp32", 0.190, 1000.0),
    "l1": (64, 1, 2, 1000, "fp32", 0.180, 1000.0),
    "h1": (64, 2, 1, 1000, "fp32", 0.190, 1000.0),
    "n100": (64, 2, 2, 100, "fp32", 0.100, 1000.0),
    "n10000": (64, 2, 2, 10000, "fp32", 0.300, 1000.0),
    "bf16": (64, 2, 2, 1000, "bf16", 0.205, 1170.0),
    "fp16": (64, 2, 2, 1000, "fp16", 0.195, 1250.0),
}
SUBJECT_OFFSETS = {"sub-01": -0.02, "sub-02": 0.02}
BATCH = 100  # clips a step: one pass over n clips takes n / 100 steps
# The equal-steps grid: the data sizes whose one pass is shorter, trained for 100 steps (the
# one pass over the largest, 10000 clips, which is that grid's run of that size)
EQUAL_STEPS = 100
EQUAL = {
    "n100_steps100": (64, 2, 2, 100, "fp32", 0.150, 1000.0),
    "base_steps100": (64, 2, 2, 1000, "fp32", 0.250, 1000.0),
}
# Mean r against flops: n100 < w32 < l1 < {base, h1, bf16, fp16} (equal flops) < w128 < n10000;
# bf16 is the best of the equal-flops group and dominates w128 (more flops, lower r).
FRONT = ["n100", "w32", "l1", "bf16", "n10000"]


def make_runs(grid: dict = GRID, equal: dict | None = None) -> pd.DataFrame:
    rows = []
    runs = [(run, values, None) for run, values in grid.items()]
    runs += [(run, values, EQUAL_STEPS) for run, values in (equal or {}).items()]
    for run, (width, layers, heads, n, precision, r, rate), steps in runs:
        n_params = 12 * layers * width**2 + 2 * VOCAB * width
        seen = steps * BATCH if steps else n
        tokens = seen * TOKENS_PER_CLIP
        rows.append(
            dict(
                run=run,
                width=width,
                layers=layers,
                heads=heads,
                context=TOKENS_PER_CLIP,
                n_samples=n,
                precision=precision,
                schedule="equal_steps" if steps else "one_pass",
                steps=steps or n // BATCH,
                clips_seen=seen,
                epochs=seen / n,
                n_params=n_params,
                tokens=tokens,
                flops=6.0 * n_params * tokens,
                wall_s=tokens / rate,
                tokens_per_s=rate,
                peak_mem_mb=100.0 + width,
                val_loss_heldout=5.0 - 10 * r,
                val_loss_overlap=4.0 - 10 * r,
            )
        )
    return pd.DataFrame(rows)


def make_scores(grid: dict = GRID) -> pd.DataFrame:
    return pd.DataFrame(
        [
            dict(subject=subject, run=run, r=values[5] + offset)
            for subject, offset in SUBJECT_OFFSETS.items()
            for run, values in grid.items()
        ]
    )


def mean_loss(*runs: str) -> list[float]:
    return [5.0 - 10 * {**GRID, **EQUAL}[run][5] for run in runs]


@pytest.fixture
def table() -> pd.DataFrame:
    return vf.architecture_table(make_runs(), make_scores())


def mean_r(*runs: str) -> list[float]:
    return [GRID[run][5] for run in runs]


def lines(ax) -> dict[str, Line2D]:
    return {line.get_label(): line for line in ax.get_lines()}


def assert_saved(paths: list[Path]) -> None:
    png, svg = paths
    data = png.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000
    text = svg.read_text()
    assert "<svg" in text[:2000] and len(text) > 10_000


def out_paths(tmp_path: Path, name: str) -> list[Path]:
    return [tmp_path / "figures" / f"{name}.png", tmp_path / "figures" / f"{name}.svg"]


# Pareto front ----------------------------------------------------------------------------


def brute_force_front(flops: np.ndarray, r: np.ndarray) -> np.ndarray:
    n = len(flops)
    mask = np.ones(n, dtype=bool)
    for i in range(n):
        for j in range(n):
            if (flops[j] <= flops[i] and r[j] > r[i]) or (flops[j] < flops[i] and r[j] >= r[i]):
                mask[i] = False
    return mask


def test_pareto_front_hand_made_points_with_ties():
    points = [
        (1.0, 0.10, True),  # the cheapest
        (2.0, 0.30, True),
        (2.0, 0.20, False),  # equal flops, lower r
        (3.0, 0.30, False),  # equal r, more flops
        (3.0, 0.50, True),
        (4.0, 0.40, False),  # more flops, lower r
        (5.0, 0.50, False),  # an exact duplicate pair dominated by (3, 0.5)
        (5.0, 0.50, False),
        (6.0, 0.70, True),  # an exact duplicate pair on the front: both kept
        (6.0, 0.70, True),
        (6.0, 0.65, False),
        (7.0, 0.70, False),  # equal r to the pair, more flops
        (8.0, 0.90, True),
    ]
    flops, r, expected = (np.array(column) for column in zip(*points, strict=True))
    np.testing.assert_array_equal(vf.pareto_front(flops, r), expected)
    order = np.random.default_rng(0).permutation(len(points))  # input order does not matter
    np.testing.assert_array_equal(vf.pareto_front(flops[order], r[order]), expected[order])
    assert vf.pareto_front(list(flops), list(r)).dtype == bool


def test_pareto_front_nan_points_are_off_and_dominate_nothing():
    flops = np.array([1.0, np.nan, 2.0, 3.0])
    r = np.array([0.1, 0.9, np.nan, 0.2])
    np.testing.assert_array_equal(vf.pareto_front(flops, r), [True, False, False, True])
    assert vf.pareto_front([], []).shape == (0,)
    with pytest.raises(ValueError, match="1-D of one length"):
        vf.pareto_front([1.0, 2.0], [0.1])


@pytest.mark.parametrize("seed", range(20))
def test_pareto_front_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 60))
    levels = int(rng.integers(2, 12))  # few distinct values: many ties
    flops = 10.0 ** rng.integers(0, levels, n)
    r = rng.integers(0, levels, n) / levels
    np.testing.assert_array_equal(vf.pareto_front(flops, r), brute_force_front(flops, r))
    flops, r = rng.lognormal(size=n), rng.normal(size=n)  # distinct values
    np.testing.assert_array_equal(vf.pareto_front(flops, r), brute_force_front(flops, r))


# Tables ----------------------------------------------------------------------------------


def test_architecture_table_merges_scores_with_runs(table):
    assert len(table) == len(GRID) * len(SUBJECT_OFFSETS)
    row = table[(table["subject"] == "sub-02") & (table["run"] == "w128")].iloc[0]
    assert row["r"] == pytest.approx(0.21)
    assert (row["width"], row["layers"], row["precision"]) == (128, 2, "fp32")
    assert row["flops"] == 6.0 * (12 * 2 * 128**2 + 2 * VOCAB * 128) * 1000 * TOKENS_PER_CLIP


@pytest.mark.parametrize(
    ("vary", "expected"),
    [
        ("width", ["w32", "base", "w128"]),
        ("layers", ["l1", "base"]),
        ("heads", ["h1", "base"]),
        ("n_samples", ["n100", "base", "n10000"]),
        ("precision", ["base", "fp16", "bf16"]),
    ],
)
def test_sweep_picks_the_runs_at_base_in_the_other_dimensions(table, vary, expected):
    runs = vf.sweep(make_runs(), BASE, vary)
    assert runs["run"].tolist() == expected
    rows = vf.sweep(table, BASE, vary)
    assert rows["run"].tolist() == [run for run in expected for _ in SUBJECT_OFFSETS]
    assert rows["subject"].tolist() == list(SUBJECT_OFFSETS) * len(expected)


def test_sweep_around_another_base(table):
    base = dict(BASE, width=128)  # no layer or head sweep around width 128
    assert vf.sweep(make_runs(), base, "layers")["run"].tolist() == ["w128"]
    assert vf.sweep(make_runs(), base, "width")["run"].tolist() == ["w32", "base", "w128"]


def test_precision_speedups_are_throughput_ratios():
    runs = make_runs()
    assert vf.precision_speedups(runs, BASE) == {"fp32": 1.0, "fp16": 1.25, "bf16": 1.17}
    # repeated runs of a precision count by their mean throughput; other sweeps are ignored
    extra = runs[runs["run"] == "bf16"].assign(run="bf16-again", tokens_per_s=1230.0)
    off_base = runs[runs["run"] == "w32"].assign(run="w32-bf16", precision="bf16", tokens_per_s=9e3)
    more = pd.concat([runs, extra, off_base], ignore_index=True)
    assert vf.precision_speedups(more, BASE) == {"fp32": 1.0, "fp16": 1.25, "bf16": 1.2}
    with pytest.raises(ValueError, match="no fp32 run"):
        vf.precision_speedups(runs[runs["precision"] != "fp32"], dict(BASE, precision="bf16"))


# Bad input -------------------------------------------------------------------------------


def test_missing_columns_are_named():
    with pytest.raises(ValueError, match=r"runs: missing columns \['width', 'precision'\]"):
        vf.architecture_table(make_runs().drop(columns=["precision", "width"]), make_scores())
    with pytest.raises(ValueError, match=r"scores: missing columns \['r'\]"):
        vf.architecture_table(make_runs(), make_scores().drop(columns="r"))
    table = vf.architecture_table(make_runs(), make_scores())
    with pytest.raises(ValueError, match=r"missing columns \['flops'\]"):
        vf.plot_compute_frontier(table.drop(columns="flops"))
    with pytest.raises(ValueError, match=r"missing columns \['tokens_per_s'\]"):
        vf.plot_precision(make_runs().drop(columns="tokens_per_s"), BASE)
    with pytest.raises(ValueError, match=r"missing columns \['subject'\]"):
        vf.plot_data_size(table.drop(columns="subject"), BASE)


def test_a_base_value_not_in_the_runs_is_named(table):
    with pytest.raises(ValueError, match=r"base width=256 is not in the runs"):
        vf.plot_architecture(table, dict(BASE, width=256))
    with pytest.raises(ValueError, match=r"base precision='tf32' is not in the runs"):
        vf.precision_speedups(make_runs(), dict(BASE, precision="tf32"))
    with pytest.raises(ValueError, match=r"base n_samples=5 is not in the runs"):
        vf.sweep(table, dict(BASE, n_samples=5), "width")
    with pytest.raises(ValueError, match=r"base: missing keys \['heads'\]"):
        vf.plot_data_size(table, {k: v for k, v in BASE.items() if k != "heads"})
    with pytest.raises(ValueError, match="'context' is not a grid dimension"):
        vf.sweep(table, BASE, "context")


def test_architecture_table_rejects_inconsistent_tables():
    scores = make_scores()
    with pytest.raises(ValueError, match=r"runs not in the runs table \['ghost'\]"):
        vf.architecture_table(make_runs(), pd.concat([scores, scores.head(1).assign(run="ghost")]))
    with pytest.raises(ValueError, match="more than one row for subject × run"):
        vf.architecture_table(make_runs(), pd.concat([scores, scores.head(1)]))
    runs = make_runs()
    with pytest.raises(ValueError, match=r"duplicated run names \['base'\]"):
        vf.architecture_table(pd.concat([runs, runs.head(1)]), scores)


def test_an_empty_sweep_is_an_error(table):
    # every base value occurs, but no run combines them
    base = dict(BASE, width=32, n_samples=100)
    with pytest.raises(ValueError, match="no runs with"):
        vf.plot_architecture(table, base)


# Plots -----------------------------------------------------------------------------------


def test_plot_architecture(table, tmp_path):
    paths = out_paths(tmp_path, "architecture")
    fig = vf.plot_architecture(table, BASE, *paths)
    assert_saved(paths)
    ax_width, ax_layers, ax_heads = fig.axes
    assert ax_width.get_xscale() == "log" and ax_width.xaxis.get_transform().base == 2
    assert ax_layers.get_xscale() == ax_heads.get_xscale() == "linear"
    expected = {
        ax_width: ([32, 64, 128], ["w32", "base", "w128"]),
        ax_layers: ([1, 2], ["l1", "base"]),
        ax_heads: ([1, 2], ["h1", "base"]),
    }
    for ax, (xs, runs) in expected.items():
        drawn = lines(ax)
        mean = drawn[vf.MEAN_LABEL]
        np.testing.assert_array_equal(mean.get_xdata(), xs)
        np.testing.assert_allclose(mean.get_ydata(), mean_r(*runs))
        assert (
            mean.get_color() == "black" and mean.get_linewidth() > drawn["sub-01"].get_linewidth()
        )
        for subject, offset in SUBJECT_OFFSETS.items():
            np.testing.assert_allclose(drawn[subject].get_ydata(), np.add(mean_r(*runs), offset))
            assert drawn[subject].get_marker() not in ("", "None", None)
        assert vf.ONE_VALUE not in ax.get_title()
    assert "layers=" not in ax_width.get_title() and "2 layers, 2 heads" in ax_width.get_title()
    assert "width 64" in ax_layers.get_title() and "1,000 clips, fp32" in ax_heads.get_title()
    legend_labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend_labels == ["sub-01", "sub-02", vf.MEAN_LABEL]


def test_plot_architecture_single_value_panel(tmp_path):
    grid = {run: values for run, values in GRID.items() if run != "l1"}
    table = vf.architecture_table(make_runs(grid), make_scores(grid))
    paths = out_paths(tmp_path, "architecture_one_layer")
    fig = vf.plot_architecture(table, BASE, *paths)
    assert_saved(paths)
    ax_width, ax_layers, ax_heads = fig.axes
    assert vf.ONE_VALUE in ax_layers.get_title()
    assert vf.ONE_VALUE not in ax_width.get_title() + ax_heads.get_title()
    mean = lines(ax_layers)[vf.MEAN_LABEL]
    np.testing.assert_array_equal(mean.get_xdata(), [2])
    np.testing.assert_allclose(mean.get_ydata(), mean_r("base"))
    lo, hi = ax_layers.get_xlim()
    assert lo < 2 < hi


def test_plot_data_size(table, tmp_path):
    paths = out_paths(tmp_path, "data_size")
    fig = vf.plot_data_size(table, BASE, *paths)
    assert_saved(paths)
    ax, ax_loss = fig.axes
    assert ax.get_xscale() == "log" and ax.xaxis.get_transform().base == 10
    mean = lines(ax)[vf.MEAN_LABEL]
    np.testing.assert_array_equal(mean.get_xdata(), [100, 1000, 10000])
    np.testing.assert_allclose(mean.get_ydata(), mean_r("n100", "base", "n10000"))
    sub01 = np.add(mean_r("n100", "base", "n10000"), SUBJECT_OFFSETS["sub-01"])
    np.testing.assert_allclose(lines(ax)["sub-01"].get_ydata(), sub01)
    assert "width 64, 2 layers, 2 heads, fp32" in fig._suptitle.get_text()
    assert "no equal-steps runs" in ax.get_title()
    assert list(lines(ax_loss)) == [vf.ONE_PASS_LABEL]


def test_plot_data_size_shows_both_grids(tmp_path):
    """Each clip seen once (solid) and equal steps at every size (dashed), in test r and in
    the held-out validation loss; the architecture sweeps keep to the one-pass runs."""
    runs = make_runs(equal=EQUAL)
    table = vf.architecture_table(runs, make_scores({**GRID, **EQUAL}))
    paths = out_paths(tmp_path, "data_size_both")
    fig = vf.plot_data_size(table, BASE, *paths)
    assert_saved(paths)
    ax, ax_loss = fig.axes
    drawn = lines(ax)
    once, equal = drawn[vf.MEAN_LABEL], drawn[vf.MEAN_LABEL + vf.EQUAL_STEPS_SUFFIX]
    assert once.get_linestyle() == "-" and equal.get_linestyle() == "--"
    np.testing.assert_array_equal(once.get_xdata(), [100, 1000, 10000])
    np.testing.assert_allclose(once.get_ydata(), mean_r("n100", "base", "n10000"))
    np.testing.assert_array_equal(equal.get_xdata(), [100, 1000, 10000])
    np.testing.assert_allclose(
        equal.get_ydata(), [EQUAL["n100_steps100"][5], EQUAL["base_steps100"][5], 0.300]
    )
    sub02 = drawn["sub-02" + vf.EQUAL_STEPS_SUFFIX]
    assert sub02.get_linestyle() == "--"
    np.testing.assert_allclose(sub02.get_ydata(), np.add(equal.get_ydata(), 0.02))
    title = ax.get_title()
    assert vf.ONE_PASS_LABEL in title and vf.equal_steps_label(EQUAL_STEPS) in title
    # the loss panel: GPT-2's held-out validation loss (not the overlapping one) of each grid
    loss = lines(ax_loss)
    assert list(loss) == [vf.ONE_PASS_LABEL, vf.equal_steps_label(EQUAL_STEPS)]
    np.testing.assert_allclose(
        loss[vf.ONE_PASS_LABEL].get_ydata(), mean_loss("n100", "base", "n10000")
    )
    np.testing.assert_allclose(
        loss[vf.equal_steps_label(EQUAL_STEPS)].get_ydata(),
        mean_loss("n100_steps100", "base_steps100", "n10000"),
    )
    assert loss[vf.equal_steps_label(EQUAL_STEPS)].get_linestyle() == "--"
    assert "held-out" in ax_loss.get_ylabel()
    # the other figures' sweeps hold the schedule at one pass
    assert vf.sweep(runs, BASE, "n_samples")["run"].tolist() == ["n100", "base", "n10000"]
    assert vf.sweep(runs, BASE, "width")["run"].tolist() == ["w32", "base", "w128"]
    rows, steps = vf.equal_steps_sweep(runs, BASE)
    assert steps == EQUAL_STEPS
    assert rows["run"].tolist() == ["n100_steps100", "base_steps100", "n10000"]
    assert vf.precision_speedups(runs, BASE) == {"fp32": 1.0, "fp16": 1.25, "bf16": 1.17}


def test_plot_precision(tmp_path):
    paths = out_paths(tmp_path, "precision")
    runs = make_runs()
    fig = vf.plot_precision(runs, BASE, *paths)
    assert_saved(paths)
    ax_time, ax_rate = fig.axes
    for ax in (ax_time, ax_rate):
        assert [t.get_text() for t in ax.get_xticklabels()] == ["fp32", "fp16", "bf16"]
    np.testing.assert_allclose([b.get_height() for b in ax_rate.patches], [1000, 1250, 1170])
    tokens = 1000 * TOKENS_PER_CLIP  # 64 s at fp32: the wall time is drawn in seconds
    np.testing.assert_allclose(
        [b.get_height() for b in ax_time.patches], [tokens / 1000, tokens / 1250, tokens / 1170]
    )
    assert ax_time.get_ylabel() == "training wall time (s)"
    assert [t.get_text() for t in ax_rate.texts] == ["1.25×", "1.17×"]
    assert len(ax_time.texts) == 0
    # the labels sit on top of the fp16 and bf16 bars
    assert [t.xy for t in ax_rate.texts] == [(1.0, 1250.0), (2.0, 1170.0)]


def test_plot_precision_without_fp32_has_no_speedups(tmp_path):
    runs = make_runs()
    fig = vf.plot_precision(runs[runs["run"] != "base"], dict(BASE, precision="bf16"))
    ax_time, ax_rate = fig.axes
    assert [t.get_text() for t in ax_rate.get_xticklabels()] == ["fp16", "bf16"]
    assert len(ax_rate.texts) == 0 and "no fp32 run" in fig._suptitle.get_text()


def test_plot_compute_frontier(table, tmp_path):
    paths = out_paths(tmp_path, "compute_frontier")
    fig = vf.plot_compute_frontier(table, *paths)
    assert_saved(paths)
    (ax,) = fig.axes
    assert ax.get_xscale() == "log"
    runs = make_runs().set_index("run")
    front = lines(ax)[vf.FRONT_LABEL]
    assert front.get_drawstyle() == "steps-post"
    np.testing.assert_array_equal(front.get_xdata(), runs.loc[FRONT, "flops"])
    np.testing.assert_allclose(front.get_ydata(), mean_r(*FRONT))
    assert [t.get_text() for t in ax.texts] == FRONT
    # every run is drawn once, at its mean r over subjects
    points = [
        (x, y)
        for line in ax.get_lines()
        if line.get_linestyle() == "None" and str(line.get_markeredgecolor()) != "black"
        for x, y in zip(line.get_xdata(), line.get_ydata(), strict=True)
    ]
    expected = sorted((runs.loc[run, "flops"], values[5]) for run, values in GRID.items())
    np.testing.assert_allclose(sorted(points), expected)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == [vf.FRONT_LABEL, "width 32", "width 64", "width 128", "fp32", "fp16", "bf16"]


# From the workflow's tables ----------------------------------------------------------------


def test_video_figures_from_the_runs_and_scores_tables(tmp_path):
    runs_path, scores_path = tmp_path / "runs.tsv", tmp_path / "scores.tsv"
    make_runs().to_csv(runs_path, sep="\t", index=False)
    whole_brain = make_scores().rename(columns={"run": "model"}).assign(atlas="all", roi="all")
    parcel = whole_brain.assign(atlas="parcels", roi="p7", r=0.9)  # not the figures' rows
    pd.concat([parcel, whole_brain]).to_csv(scores_path, sep="\t", index=False)
    out = {}
    for name in vf.FIGURES:
        out[name], out[f"{name}_svg"] = out_paths(tmp_path, name)
    figures = vf.video_figures(runs_path, scores_path, BASE, out)
    assert list(figures) == list(vf.FIGURES)
    for name in vf.FIGURES:
        assert_saved([out[name], out[f"{name}_svg"]])
    ax_width = figures["architecture"].axes[0]
    np.testing.assert_allclose(
        lines(ax_width)[vf.MEAN_LABEL].get_ydata(), mean_r("w32", "base", "w128")
    )
    ax, _ = figures["data_size"].axes
    np.testing.assert_allclose(
        lines(ax)["sub-02"].get_ydata(),
        np.add(mean_r("n100", "base", "n10000"), SUBJECT_OFFSETS["sub-02"]),
    )
    _, ax_rate = figures["precision"].axes
    assert [t.get_text() for t in ax_rate.texts] == ["1.25×", "1.17×"]
    (ax,) = figures["compute_frontier"].axes
    np.testing.assert_allclose(lines(ax)[vf.FRONT_LABEL].get_ydata(), mean_r(*FRONT))


def test_plot_precision_shows_all_four_with_tf32_after_fp32(tmp_path):
    runs = make_runs()
    tf32 = runs[runs["run"] == "bf16"].assign(run="tf32", precision="tf32", tokens_per_s=1080.0)
    runs = pd.concat([runs, tf32], ignore_index=True)
    assert vf.precision_speedups(runs, BASE)["tf32"] == 1.08
    fig = vf.plot_precision(runs, BASE)
    ax_time, ax_rate = fig.axes
    assert [t.get_text() for t in ax_rate.get_xticklabels()] == ["fp32", "tf32", "fp16", "bf16"]
    np.testing.assert_allclose([b.get_height() for b in ax_rate.patches], [1000, 1080, 1250, 1170])
    assert [t.get_text() for t in ax_rate.texts] == ["1.08×", "1.25×", "1.17×"]
