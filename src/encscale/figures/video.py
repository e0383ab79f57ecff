"""The video study's figures: VideoGPT encoding accuracy against architecture, training data,
precision and training compute (matplotlib; PNG and SVG).

Inputs are tidy tables: ``runs`` (one row per trained GPT-2: its grid coordinates ``width``,
``layers``, ``heads``, ``n_samples``, ``precision``, its ``schedule`` and ``steps`` and its
cost: ``n_params``, ``tokens``, ``flops``, ``wall_s``, ``tokens_per_s``, ...), ``scores`` (one
row per subject × run: mean test Pearson r over parcels) and ``base``, the grid's base value
of each dimension in :data:`DIMENSIONS`: every sweep varies one dimension and holds the
others at base, among the runs that see each clip once (schedule ``one_pass``). The data-size
figure also draws the data sizes trained for equal steps (schedule ``equal_steps``,
:mod:`encscale.video.grid`), dashed.

Each plotting function returns its Figure; given paths, it also saves the figure there with
:func:`encscale.figures.style.save_figure` (which closes it); without paths it is left open.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.ticker import NullLocator

from encscale.figures.style import R_LABEL, finish_scaling_axes, mean_curve, plt, save_figure
from encscale.scaling.analysis import read_scores
from encscale.video.grid import DIMENSIONS

# The study's figures, by the names of their files.
FIGURES = ("architecture", "data_size", "precision", "compute_frontier")
# Precisions in plotting order; any other precision is put after these, alphabetically.
PRECISIONS = ("fp32", "tf32", "fp16", "bf16")
PRECISION_COLORS = {
    "fp32": "tab:blue",
    "tf32": "tab:purple",
    "fp16": "tab:orange",
    "bf16": "tab:green",
}
PRECISION_MARKERS = {"fp32": "o", "tf32": "D", "fp16": "s", "bf16": "^"}
RUN_KEYS = ("run", *DIMENSIONS, "schedule")
SCORE_COLUMNS = ("subject", "run", "r")
SPEED_COLUMNS = (*RUN_KEYS, "wall_s", "tokens_per_s")
FRONTIER_COLUMNS = ("subject", "run", "r", "flops", "width", "precision")
ONE_VALUE = "(one value in this grid)"
MEAN_LABEL = "mean over subjects"
FRONT_LABEL = "Pareto front"
ONE_PASS = "one_pass"
ONE_PASS_LABEL = "each clip seen once"
EQUAL_STEPS_SUFFIX = ", equal steps"  # of the equal-steps grid's lines (dashed)
LOSS_COLUMN = "val_loss_heldout"
LOSS_LABEL = "held-out validation loss (nats per code)"


def equal_steps_label(steps: int) -> str:
    """The legend label of the equal-steps grid's runs."""
    return f"{steps:,} steps at every size"


def _require_columns(table: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    """Raise ValueError naming the ``columns`` that ``table`` (called ``what``) lacks."""
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"{what}: missing columns {missing} (has {list(table.columns)})")


def _check_base(table: pd.DataFrame, base: Mapping[str, Any], keys: Iterable[str]) -> None:
    """Raise ValueError if ``base`` lacks one of ``keys`` or its value is not in ``table``."""
    missing = [k for k in keys if k not in base]
    if missing:
        raise ValueError(f"base: missing keys {missing}")
    for key in keys:
        values = table[key].unique()
        if not (table[key] == base[key]).any():
            raise ValueError(
                f"base {key}={base[key]!r} is not in the runs ({key} values: {_ordered(values)})"
            )


def _precision_rank(precision: Any) -> tuple[int, str]:
    p = str(precision)
    return (PRECISIONS.index(p), "") if p in PRECISIONS else (len(PRECISIONS), p)


def _ordered(values: Iterable[Any]) -> list[Any]:
    """Distinct values sorted (precisions in :data:`PRECISIONS` order), as plain Python."""
    values = list(dict.fromkeys(v.item() if isinstance(v, np.generic) else v for v in values))
    if all(isinstance(v, str) for v in values):
        return sorted(values, key=_precision_rank)
    return sorted(values)


def _sort_key(column: pd.Series) -> pd.Series:
    if column.name == "precision":
        return column.map(_precision_rank)
    return column


def architecture_table(runs: pd.DataFrame, scores: pd.DataFrame) -> pd.DataFrame:
    """One row per subject × run: the score ``r`` with all of its run's columns.

    Raises ValueError on missing columns, duplicated run names or subject × run rows, and
    scores of runs absent from ``runs``. Runs without scores have no rows.
    """
    _require_columns(runs, RUN_KEYS, "runs")
    _require_columns(scores, SCORE_COLUMNS, "scores")
    duplicated = runs.loc[runs["run"].duplicated(), "run"].unique().tolist()
    if duplicated:
        raise ValueError(f"runs: duplicated run names {duplicated}")
    twice = scores[scores.duplicated(["subject", "run"])]
    if not twice.empty:
        pairs = list(twice[["subject", "run"]].itertuples(index=False, name=None))
        raise ValueError(f"scores: more than one row for subject × run {pairs[:5]}")
    unknown = sorted(set(scores["run"]) - set(runs["run"]))
    if unknown:
        raise ValueError(f"scores: runs not in the runs table {unknown[:5]}")
    table = scores[list(SCORE_COLUMNS)].merge(runs, on="run", how="inner", validate="many_to_one")
    return table.sort_values(["subject", "run"], ignore_index=True)


def sweep(table: pd.DataFrame, base: Mapping[str, Any], vary: str) -> pd.DataFrame:
    """The rows of ``table`` equal to ``base`` in every dimension but ``vary``, of the runs
    that see each clip once (``schedule`` one_pass), sorted by ``vary``.

    Columns outside :data:`DIMENSIONS` (e.g. ``context``) are not held fixed. Precisions sort
    as in :data:`PRECISIONS`; ties are ordered by subject (if present) and run.
    """
    if vary not in DIMENSIONS:
        raise ValueError(f"vary: '{vary}' is not a grid dimension {list(DIMENSIONS)}")
    _require_columns(table, RUN_KEYS, "table")
    _check_base(table, base, DIMENSIONS)
    keep = (table["schedule"] == ONE_PASS).to_numpy() & _at_base(table, base, vary)
    rows = table[keep]
    order = [vary, *(["subject"] if "subject" in rows.columns else []), "run"]
    return rows.sort_values(order, key=_sort_key, kind="stable", ignore_index=True)


def _at_base(table: pd.DataFrame, base: Mapping[str, Any], vary: str) -> np.ndarray:
    keep = np.ones(len(table), dtype=bool)
    for key in DIMENSIONS:
        if key != vary:
            keep &= (table[key] == base[key]).to_numpy()
    return keep


def equal_steps_sweep(table: pd.DataFrame, base: Mapping[str, Any]) -> tuple[pd.DataFrame, int]:
    """The equal-steps grid at ``base``: the rows equal to ``base`` in every dimension but
    ``n_samples`` that train for S steps, S the steps of the equal-steps runs there (a size
    whose one pass takes S steps is its one-pass run), sorted by ``n_samples``; and S.
    No equal-steps run there: no rows and S = 0. Raises ValueError if they differ in steps.
    """
    _require_columns(table, (*RUN_KEYS, "steps"), "table")
    _check_base(table, base, DIMENSIONS)
    rows = table[_at_base(table, base, "n_samples")]
    steps = _ordered(rows.loc[rows["schedule"] == "equal_steps", "steps"])
    if len(steps) > 1:
        raise ValueError(f"equal-steps runs of different steps {steps} at one base")
    if not steps:
        return rows.iloc[:0], 0
    rows = rows[rows["steps"] == steps[0]]
    order = ["n_samples", *(["subject"] if "subject" in rows.columns else []), "run"]
    return rows.sort_values(order, kind="stable", ignore_index=True), int(steps[0])


def _held_fixed(base: Mapping[str, Any], vary: str) -> str:
    """The base values of the dimensions other than ``vary``, as words."""
    words = {
        "width": lambda v: f"width {v}",
        "layers": lambda v: f"{v} layers",
        "heads": lambda v: f"{v} heads",
        "n_samples": lambda v: f"{v:,} clips",
        "precision": str,
    }
    return ", ".join(words[key](base[key]) for key in DIMENSIONS if key != vary)


def _nonempty_sweep(table: pd.DataFrame, base: Mapping[str, Any], vary: str) -> pd.DataFrame:
    rows = sweep(table, base, vary)
    if rows.empty:
        raise ValueError(f"no runs with {_held_fixed(base, vary)} (the base of the {vary} sweep)")
    return rows


def _subject_styles(subjects: Iterable[str]) -> dict[str, tuple[Any, str]]:
    """A (colour, marker) per subject, the same in every panel."""
    colors = plt.cm.tab10(np.linspace(0, 1, 10))
    return {s: (colors[i % 10], "osD^vP*X"[i % 8]) for i, s in enumerate(sorted(set(subjects)))}


def _plot_sweep(
    ax: plt.Axes, rows: pd.DataFrame, x: str, styles: dict, ls: str = "-", suffix: str = ""
) -> np.ndarray:
    """One thin line per subject and the mean over subjects (thick, black), in line style
    ``ls`` and labels ending in ``suffix``; the x values."""
    per_subject = rows.groupby(["subject", x], as_index=False)["r"].mean()
    for subject, g in per_subject.groupby("subject"):
        color, marker = styles[subject]
        style = dict(color=color, marker=marker, ms=5, lw=1, ls=ls, alpha=0.8)
        ax.plot(g[x], g["r"], label=subject + suffix, **style)
    mean = mean_curve(rows, x)
    style = dict(color="black", lw=2.8, ls=ls, marker="o", ms=6)
    ax.plot(mean[x], mean["r"], label=MEAN_LABEL + suffix, **style)
    return mean[x].to_numpy()


def _value_ticks(ax: plt.Axes, xs: np.ndarray, log_base: float | None) -> None:
    """Ticks at the grid's values; a single value gets room on either side."""
    if log_base is not None:
        ax.set_xscale("log", base=log_base)
    ax.set_xticks(xs, [f"{v:g}" for v in xs])
    ax.xaxis.set_minor_locator(NullLocator())
    if len(xs) == 1:
        v = float(xs[0])
        ax.set_xlim((v / 2, v * 2) if log_base is not None else (v - 1, v + 1))


def plot_architecture(
    table: pd.DataFrame, base: Mapping[str, Any], *paths: str | Path
) -> plt.Figure:
    """Test r against GPT-2 hidden size (log2 x), layers and heads, each swept at the base of
    the others: a line per subject and the mean over subjects (thick, black)."""
    _require_columns(table, (*SCORE_COLUMNS, *DIMENSIONS), "table")
    panels = [("width", "hidden size", 2), ("layers", "layers", None), ("heads", "heads", None)]
    sweeps = [_nonempty_sweep(table, base, vary) for vary, _, _ in panels]
    styles = _subject_styles(table["subject"])
    fig, axes = plt.subplots(1, 3, figsize=(12.0, 4.2), sharey=True)
    for ax, rows, (vary, label, log_base) in zip(axes, sweeps, panels, strict=True):
        xs = _plot_sweep(ax, rows, vary, styles)
        _value_ticks(ax, xs, log_base)
        title = f"r vs {label}\nfixed: {_held_fixed(base, vary)}"
        if len(xs) == 1:
            title += f"\n{ONE_VALUE}"
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(f"GPT-2 {label}" + (" (log₂ scale)" if log_base else ""))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(R_LABEL)
    handles = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    labels = sorted(handles, key=lambda s: (s == MEAN_LABEL, s))
    fig.legend(
        [handles[k] for k in labels],
        labels,
        fontsize=8,
        loc="center left",
        bbox_to_anchor=(1.0, 0.5),
    )
    fig.suptitle("VideoGPT: encoding accuracy against GPT-2 architecture", fontsize=11)
    fig.tight_layout()
    if paths:
        save_figure(fig, *paths)
    return fig


def _loss_curve(rows: pd.DataFrame) -> pd.DataFrame:
    """Per data size: the held-out validation loss of its run(s), mean over runs."""
    per_run = rows.drop_duplicates("run")
    return per_run.groupby("n_samples", as_index=False)[LOSS_COLUMN].mean()


def plot_data_size(table: pd.DataFrame, base: Mapping[str, Any], *paths: str | Path) -> plt.Figure:
    """Data scaling at the base architecture and precision, against the number of distinct
    training clips (log10 x), of both grids: the runs that see each clip once (solid: their
    steps grow with the data) and, where the grid has them, the runs of equal steps at every
    size (dashed, :func:`equal_steps_sweep`). Left: test r, a line per subject and the mean
    over subjects (thick, black); right: GPT-2's held-out validation loss."""
    _require_columns(table, (*SCORE_COLUMNS, *RUN_KEYS, "steps", LOSS_COLUMN), "table")
    once = _nonempty_sweep(table, base, "n_samples")
    equal, steps = equal_steps_sweep(table, base)
    styles = _subject_styles(table["subject"])
    fig, (ax, ax_loss) = plt.subplots(1, 2, figsize=(12.5, 4.8))
    xs = _plot_sweep(ax, once, "n_samples", styles)
    grids = [(once, "-", ONE_PASS_LABEL)]
    if steps:
        xs = np.union1d(xs, _plot_sweep(ax, equal, "n_samples", styles, "--", EQUAL_STEPS_SUFFIX))
        grids.append((equal, "--", equal_steps_label(steps)))
    for rows, ls, label in grids:
        loss = _loss_curve(rows)
        ax_loss.plot(
            loss["n_samples"], loss[LOSS_COLUMN], color="black", ls=ls, marker="o", label=label
        )
    grid_words = f"solid: {ONE_PASS_LABEL}" + (
        f"; dashed: {equal_steps_label(steps)}" if steps else " (no equal-steps runs)"
    )
    title = f"Encoding accuracy\n{grid_words}"
    if len(xs) == 1:
        title += f"\n{ONE_VALUE}"
    finish_scaling_axes(ax, "distinct training clips (log₁₀ scale)", title)
    ax.set_title(title, fontsize=9)
    ax_loss.set_xlabel("distinct training clips (log₁₀ scale)")
    ax_loss.set_ylabel(LOSS_LABEL)
    ax_loss.set_title("GPT-2 loss on clips of held-out episodes", fontsize=9)
    ax_loss.legend(fontsize=7)
    ax_loss.grid(alpha=0.3, which="both")
    for a in (ax, ax_loss):
        _value_ticks(a, xs, 10)
    fig.suptitle(f"Data scaling of VideoGPT, fixed: {_held_fixed(base, 'n_samples')}", fontsize=11)
    fig.tight_layout()
    if paths:
        save_figure(fig, *paths)
    return fig


def _speed_table(runs: pd.DataFrame, base: Mapping[str, Any]) -> pd.DataFrame:
    """Mean wall time and throughput per precision of the runs at the base architecture and
    data size, indexed by precision in plotting order."""
    _require_columns(runs, SPEED_COLUMNS, "runs")
    rows = _nonempty_sweep(runs, base, "precision")
    speed = rows.groupby("precision")[["wall_s", "tokens_per_s"]].mean()
    return speed.reindex(_ordered(speed.index))


def precision_speedups(runs: pd.DataFrame, base: Mapping[str, Any]) -> dict[str, float]:
    """Throughput (tokens/s) of each precision over fp32's, fp32 included (1.0), for the runs
    at the base architecture and data size; a precision with several runs counts by its mean
    throughput. Raises ValueError if there is no fp32 run there."""
    speed = _speed_table(runs, base)
    if "fp32" not in speed.index:
        raise ValueError(
            f"no fp32 run with {_held_fixed(base, 'precision')} to compare with "
            f"(precisions: {list(speed.index)})"
        )
    ratio = speed["tokens_per_s"] / speed.loc["fp32", "tokens_per_s"]
    return {str(p): float(v) for p, v in ratio.items()}


def _duration_unit(seconds: float) -> tuple[float, str]:
    if seconds >= 2 * 3600:
        return 3600.0, "h"
    if seconds >= 120:
        return 60.0, "min"
    return 1.0, "s"


def plot_precision(runs: pd.DataFrame, base: Mapping[str, Any], *paths: str | Path) -> plt.Figure:
    """Training wall time and throughput per precision (bars, fp32/fp16/bf16) at the base
    architecture and data size; each non-fp32 throughput bar is labelled with its speed-up
    over fp32 (see :func:`precision_speedups`)."""
    speed = _speed_table(runs, base)
    speedups = precision_speedups(runs, base) if "fp32" in speed.index else {}
    precisions = list(speed.index)
    xs = np.arange(len(precisions))
    colors = [PRECISION_COLORS.get(p, "tab:gray") for p in precisions]
    scale, unit = _duration_unit(float(speed["wall_s"].max()))
    fig, (ax_time, ax_rate) = plt.subplots(1, 2, figsize=(8.5, 3.8))
    ax_time.bar(xs, speed["wall_s"] / scale, color=colors, width=0.6)
    ax_time.set_ylabel(f"training wall time ({unit})")
    ax_time.set_title("Wall time", fontsize=10)
    bars = ax_rate.bar(xs, speed["tokens_per_s"], color=colors, width=0.6)
    ax_rate.set_ylabel("throughput (tokens/s)")
    ax_rate.set_title("Throughput (label: speed-up over fp32)", fontsize=10)
    for precision, bar in zip(precisions, bars, strict=True):
        if precision != "fp32" and precision in speedups:
            ax_rate.annotate(
                f"{speedups[precision]:.2f}×",
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                xytext=(0, 3),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize=9,
            )
    for ax in (ax_time, ax_rate):
        ax.set_xticks(xs, precisions)
        ax.set_xlabel("precision")
        ax.set_ylim(0, ax.get_ylim()[1] * 1.12)
        ax.grid(alpha=0.3, axis="y")
    note = "" if speedups else " (no fp32 run: no speed-ups)"
    fig.suptitle(
        f"Training speed by precision, {_held_fixed(base, 'precision')}{note}", fontsize=10
    )
    fig.tight_layout()
    if paths:
        save_figure(fig, *paths)
    return fig


def pareto_front(flops: Any, r: Any) -> np.ndarray:
    """Boolean mask of the points on the Pareto front (least compute, highest r).

    Point j dominates point i if ``flops[j] <= flops[i] and r[j] > r[i]`` or ``flops[j] <
    flops[i] and r[j] >= r[i]``; the front is the points that no point dominates. Ties: of
    points with equal flops only those with the highest r can be on the front; of points with
    equal r only those with the least flops; exact duplicates dominate neither each other, so
    they are all on the front or all off it. A point with a NaN is never on the front and
    dominates nothing. O(n log n).
    """
    flops = np.asarray(flops, dtype=float)
    r = np.asarray(r, dtype=float)
    if flops.ndim != 1 or flops.shape != r.shape:
        raise ValueError(f"flops and r must be 1-D of one length, got {flops.shape}, {r.shape}")
    mask = np.zeros(flops.shape, dtype=bool)
    valid = np.flatnonzero(~(np.isnan(flops) | np.isnan(r)))
    order = valid[np.lexsort((-r[valid], flops[valid]))]  # flops ascending, then r descending
    best = None  # the highest r among strictly smaller flops
    start = 0
    while start < order.size:
        stop = start + 1
        while stop < order.size and flops[order[stop]] == flops[order[start]]:
            stop += 1
        group = order[start:stop]
        top = r[group[0]]
        if best is None or top > best:
            mask[group[r[group] == top]] = True
            best = top
        start = stop
    return mask


def _run_means(table: pd.DataFrame) -> pd.DataFrame:
    """Per run: the mean r over subjects with the run's flops, width and precision."""
    runs = table.groupby("run", as_index=False).agg(
        r=("r", "mean"),
        flops=("flops", "first"),
        width=("width", "first"),
        precision=("precision", "first"),
    )
    return runs.sort_values(["flops", "run"], ignore_index=True)


def plot_compute_frontier(table: pd.DataFrame, *paths: str | Path) -> plt.Figure:
    """Mean test r over subjects against training FLOPs (log x) for every run, coloured by
    GPT-2 width and marked by precision; the Pareto front (:func:`pareto_front`) as a step
    line (the best r reachable within a budget) with its runs circled and named."""
    _require_columns(table, FRONTIER_COLUMNS, "table")
    runs = _run_means(table)
    widths = _ordered(runs["width"])
    cmap = plt.cm.viridis(np.linspace(0.0, 0.85, max(len(widths), 2)))
    width_color = {w: cmap[i] for i, w in enumerate(widths)}
    fig, ax = plt.subplots(figsize=(7.5, 5.0))
    for (width, precision), g in runs.groupby(["width", "precision"]):
        ax.plot(
            g["flops"],
            g["r"],
            ls="none",
            marker=PRECISION_MARKERS.get(precision, "D"),
            ms=8,
            mfc="none",  # hollow: runs that differ only in precision share a point
            mec=width_color[width],
            mew=1.6,
        )
    front = runs[pareto_front(runs["flops"], runs["r"])]
    ax.plot(
        front["flops"], front["r"], drawstyle="steps-post", color="black", lw=1.4, label=FRONT_LABEL
    )
    ax.plot(front["flops"], front["r"], ls="none", marker="o", ms=13, mfc="none", mec="black")
    for row in front.itertuples():
        ax.annotate(
            row.run, (row.flops, row.r), xytext=(4, 6), textcoords="offset points", fontsize=7
        )
    for w in widths:
        ax.plot([], [], ls="none", marker="o", color=width_color[w], label=f"width {w}")
    for p in _ordered(runs["precision"]):
        ax.plot(
            [], [], ls="none", marker=PRECISION_MARKERS.get(p, "D"), mfc="none", mec="gray", label=p
        )
    finish_scaling_axes(
        ax, "training compute (FLOPs ≈ 6 · parameters · tokens)", "VideoGPT: accuracy vs compute"
    )
    ax.set_ylabel("mean r over subjects (Pearson, test)")
    if paths:
        save_figure(fig, *paths)
    return fig


def video_figures(
    runs_path: str | Path,
    scores_path: str | Path,
    base: Mapping[str, Any],
    out: Mapping[str, str | Path],
) -> dict[str, plt.Figure]:
    """The study's :data:`FIGURES` from the runs table (``training/runs.tsv``) and the scores
    table (``scores/scores.tsv``: its whole-brain rows, atlas and ROI ``all``, whose model is
    the run); returns them by name.

    ``out``: each figure's PNG under its name and its SVG under ``{name}_svg`` (the names of
    the rule's outputs).
    """
    runs = pd.read_csv(runs_path, sep="\t")
    scores = read_scores(scores_path)
    scores = scores[(scores["atlas"] == "all") & (scores["roi"] == "all")]
    table = architecture_table(runs, scores.rename(columns={"model": "run"})[list(SCORE_COLUMNS)])

    def paths(name: str) -> tuple[str | Path, str | Path]:
        return out[name], out[f"{name}_svg"]

    return {
        "architecture": plot_architecture(table, base, *paths("architecture")),
        "data_size": plot_data_size(table, base, *paths("data_size")),
        "precision": plot_precision(runs, base, *paths("precision")),
        "compute_frontier": plot_compute_frontier(table, *paths("compute_frontier")),
    }
