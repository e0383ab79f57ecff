"""The studies' figures from the tidy score and scaling tables (matplotlib, PNG)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from encscale.io import atomic_path  # noqa: E402


def save_figure(fig: plt.Figure, *paths: str | Path) -> None:
    """Save ``fig`` to each path (atomically, format from the suffix: png, svg, pdf); close it."""
    for path in paths:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=150, bbox_inches="tight", format=Path(path).suffix.lstrip("."))
    plt.close(fig)


def _curve(scores: pd.DataFrame, x: str) -> pd.DataFrame:
    """Mean over subjects and draws, and the SEM over subjects, of r at each x."""
    per_subject = scores.groupby(["subject", x], as_index=False)["r"].mean()
    g = per_subject.groupby(x)["r"]
    out = pd.DataFrame({"r": g.mean(), "sem": g.sem(ddof=1).fillna(0.0)})
    return out.reset_index()


def _finish_scaling_axes(ax: plt.Axes, xlabel: str, title: str) -> None:
    """Log x axis, labels, legend outside on the right, grid."""
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("prediction accuracy (mean Pearson r, test)")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(alpha=0.3, which="both")


def plot_data_scaling(scores: pd.DataFrame, fits: pd.DataFrame, model: str, out: str | Path):
    """Study 1, Fig. 1: test r against training size per ROI; black: mean over ROIs."""
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    colors = plt.cm.tab10(np.linspace(0, 1, 10))
    slopes = fits.set_index("roi")
    for i, (roi, g) in enumerate(scores.groupby("roi", sort=False)):
        c = _curve(g, "size")
        s = slopes.loc[roi]
        ax.errorbar(
            c["size"],
            c["r"],
            yerr=c["sem"],
            marker="o",
            ms=4,
            capsize=2,
            color=colors[i % 10],
            label=f"{roi} (b={s.b:.3f} [{s.b_lo:.3f}, {s.b_hi:.3f}])",
        )
    mean = _curve(scores.groupby(["subject", "seed", "size"], as_index=False)["r"].mean(), "size")
    s = slopes.loc["mean"]
    ax.plot(
        mean["size"],
        mean["r"],
        color="black",
        lw=2.5,
        marker="s",
        label=f"mean over ROIs (b={s.b:.3f} [{s.b_lo:.3f}, {s.b_hi:.3f}])",
    )
    _finish_scaling_axes(ax, "training samples", f"Data scaling: {model}")
    save_figure(fig, out)


def plot_param_scaling(scores: pd.DataFrame, size: int, out: str | Path) -> None:
    """Study 1, Fig. 2: test r against parameter count per ROI; markers name the models."""
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    colors = plt.cm.tab10(np.linspace(0, 1, 10))
    markers = dict(zip(sorted(scores["model"].unique()), "osD^vP*X", strict=False))
    for i, (roi, g) in enumerate(scores.groupby("roi", sort=False)):
        c = _curve(g, "n_params").sort_values("n_params")
        ax.plot(c["n_params"], c["r"], color=colors[i % 10], lw=1.2, label=roi)
        for model, gm in g.groupby("model"):
            cm = _curve(gm, "n_params")
            ax.errorbar(
                cm["n_params"],
                cm["r"],
                yerr=cm["sem"],
                color=colors[i % 10],
                marker=markers[model],
                ms=6,
                capsize=2,
                ls="none",
            )
    for model, mk in markers.items():
        ax.plot([], [], color="gray", marker=mk, ls="none", label=model)
    _finish_scaling_axes(ax, "model parameters", f"Parameter scaling at {size} training samples")
    save_figure(fig, out)


def plot_roi_scores(
    scores: pd.DataFrame, model: str, size: int, atlases: list[str], out: str | Path
) -> None:
    """Study 1, Fig. 3: noise-normalised score per ROI (grouped by atlas), one bar per subject."""
    rows = scores[scores["atlas"].isin(atlases)]
    table = rows.groupby(["atlas", "roi", "subject"])["nn_r2"].mean().unstack("subject")
    table = table.reindex(sorted(table.index, key=lambda key: (atlases.index(key[0]), key[1])))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.45 * len(table)), 4.2))
    n_sub = table.shape[1]
    width = 0.8 / n_sub
    xs = np.arange(len(table))
    for j, subject in enumerate(table.columns):
        ax.bar(xs + (j - (n_sub - 1) / 2) * width, table[subject], width, label=subject)
    ax.set_xticks(xs, [roi for _, roi in table.index], rotation=60, ha="right", fontsize=8)
    starts = [i for i in range(1, len(table)) if table.index[i][0] != table.index[i - 1][0]]
    for i in starts:
        ax.axvline(i - 0.5, color="gray", lw=0.8)
    ax.set_ylabel("noise-normalised accuracy (% of explainable variance)")
    ax.set_ylim(0, 100)
    ax.set_title(f"{model}, {size} training samples ({', '.join(atlases)})", fontsize=9)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(alpha=0.3, axis="y")
    save_figure(fig, out)
