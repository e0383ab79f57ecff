"""The first study's figures from the tidy score and scaling tables (matplotlib; PNG and SVG).

Each ``plot_*`` function returns its Figure; given paths, it also saves the figure there with
:func:`encscale.figures.style.save_figure` (which closes it). Each ``figure_*`` function reads
the workflow's tables (``scores/scores.tsv``, ``scaling/*.tsv``), selects the rows its figure
shows and plots them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from encscale.encoding.ensemble import ENSEMBLE
from encscale.figures.style import finish_scaling_axes, mean_curve, plt, save_figure
from encscale.scaling.analysis import ensemble_rows, read_scores, read_table, scaling_rows


def _curve_over_rois(scores: pd.DataFrame) -> pd.DataFrame:
    """:func:`mean_curve` against size of the mean r over ROIs per subject, draw and size."""
    per_draw = scores.groupby(["subject", "seed", "size"], as_index=False)["r"].mean()
    return mean_curve(per_draw, "size")


EXTRAPOLATE_MAX = 100.0  # the dashed segment ends at most this many times beyond the data


def _power_curve(fit: pd.Series, x_end: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x and fitted r of a power-law row, inside the data and on to ``x_end`` (dashed)."""
    law = lambda x: fit.r_inf - fit.A * x ** (-fit.alpha)  # noqa: E731
    inside = np.geomspace(fit.x_min, fit.x_max, 60)
    beyond = np.geomspace(fit.x_max, max(x_end, fit.x_max), 60)
    return inside, law(inside), np.stack([beyond, law(beyond)])


def _extrapolation_end(extrapolation: pd.DataFrame, x_max: float) -> float:
    """Where the dashed segment ends: the largest finite extrapolated x, within bounds."""
    reach = extrapolation["x"].to_numpy(dtype=float)
    reach = reach[np.isfinite(reach)]
    return float(np.clip(reach.max() if reach.size else x_max, 4 * x_max, EXTRAPOLATE_MAX * x_max))


def _plot_law(ax, fit, x_end, color, label, lw=1.2) -> None:
    inside_x, inside_y, beyond = _power_curve(fit, x_end)
    ax.plot(inside_x, inside_y, color=color, lw=lw, label=label)
    ax.plot(beyond[0], beyond[1], color=color, lw=lw, ls="--")


def _law_label(roi: str, fit: pd.Series) -> str:
    return (
        f"{roi}: r∞={fit.r_inf:.2f} [{fit.r_inf_lo:.2f}, {fit.r_inf_hi:.2f}], "
        f"α={fit.alpha:.2f} [{fit.alpha_lo:.2f}, {fit.alpha_hi:.2f}]"
    )


def _pooled_power(fits: pd.DataFrame) -> pd.DataFrame:
    rows = fits[(fits["scope"] == "pooled") & (fits["law"] == "power")]
    return rows.set_index("roi")


def plot_data_scaling(
    scores: pd.DataFrame,
    fits: pd.DataFrame,
    extrapolation: pd.DataFrame,
    ensemble: pd.DataFrame,
    model: str,
    *out: str | Path,
) -> plt.Figure:
    """Study 1, Fig. 1 with the laws: test r against training size per ROI (mean ± SEM over
    subjects), each ROI's saturating power law (pooled fit; dashed: extrapolated), the mean
    over ROIs in black with its noise ceiling (dotted) and the sizes reaching the
    extrapolated fractions of it (×), and the ensemble's mean over ROIs (★)."""
    fig, ax = plt.subplots(figsize=(7.5, 5.0))
    colors = plt.cm.tab10(np.linspace(0, 1, 10))
    laws = _pooled_power(fits)
    extra = extrapolation[(extrapolation["scope"] == "pooled") & (extrapolation["law"] == "power")]
    x_max = float(scores["size"].max())
    x_end = _extrapolation_end(extra[extra["roi"] == "mean"], x_max)
    for i, (roi, g) in enumerate(scores.groupby("roi", sort=False)):
        c = mean_curve(g, "size")
        ax.errorbar(
            c["size"],
            c["r"],
            yerr=c["sem"],
            marker="o",
            ms=3.5,
            capsize=2,
            ls="none",
            color=colors[i % 10],
        )
        if roi in laws.index:
            _plot_law(ax, laws.loc[roi], x_end, colors[i % 10], _law_label(roi, laws.loc[roi]))
    mean = _curve_over_rois(scores)
    ax.errorbar(mean["size"], mean["r"], yerr=mean["sem"], color="black", marker="s", ls="none")
    if "mean" in laws.index:
        fit = laws.loc["mean"]
        _plot_law(ax, fit, x_end, "black", _law_label("mean over ROIs", fit), lw=2.2)
        if not extra.empty:  # the ceiling is known (else the bound is r = 1)
            ax.axhline(fit.ceiling_r, color="black", ls=":", lw=1, label="noise ceiling (mean)")
        for row in extra[extra["roi"] == "mean"].itertuples():
            if fit.x_min <= row.x <= x_end:  # marks inside the plotted curve only
                ax.plot(row.x, row.target_r, "x", color="black", ms=7)
                ax.annotate(
                    f"{row.fraction:.0%}",
                    (row.x, row.target_r),
                    fontsize=7,
                    textcoords="offset points",
                    xytext=(3, -9),
                )
    if not ensemble.empty:
        e = _curve_over_rois(ensemble)
        ax.plot(e["size"], e["r"], "*", color="black", ms=11, label="ensemble (mean over ROIs)")
    finish_scaling_axes(ax, "training samples", f"Data scaling: {model}")
    if out:
        save_figure(fig, *out)
    return fig


def plot_param_scaling(
    scores: pd.DataFrame,
    fits: pd.DataFrame,
    ensemble: pd.DataFrame,
    size: int,
    *out: str | Path,
    families: Mapping[str, str] | None = None,
) -> plt.Figure:
    """Study 1, Fig. 2 with the laws: test r against parameter count per ROI; markers name
    the models. Within each family of two models or more (``families``: {model: family};
    a model without one is its own), the family's points are joined (dotted) and each
    ROI's power law of that family drawn (pooled; dashed beyond its largest model to 4×
    its parameters), or a solid line joins the points where the law failed; models of no
    such family are points only: no line crosses families. The ensemble (★) sits at the
    sum of its members' parameters, in no law."""
    fig, ax = plt.subplots(figsize=(7.5, 5.0))
    colors = plt.cm.tab10(np.linspace(0, 1, 10))
    markers = dict(zip(sorted(scores["model"].unique()), "osD^vP*X", strict=False))
    family_of = {m: (families or {}).get(m, m) for m in markers}
    members: dict[str, list[str]] = {}
    for model, family in family_of.items():
        members.setdefault(family, []).append(model)
    series = {f: models for f, models in members.items() if len(models) >= 2}
    laws = fits[(fits["scope"] == "pooled") & (fits["law"] == "power")]
    for i, (roi, g) in enumerate(scores.groupby("roi", sort=False)):
        for family, models in series.items():
            rows = g[g["model"].isin(models)]
            law = laws[(laws["roi"] == roi) & (laws["family"].astype(str) == family)]
            name = roi if len(series) == 1 else f"{roi}, {family}"
            c = mean_curve(rows, "n_params").sort_values("n_params")
            if len(law) and np.isfinite(law.iloc[0].r_inf):
                x_end = 4 * float(rows["n_params"].max())
                _plot_law(ax, law.iloc[0], x_end, colors[i % 10], _law_label(name, law.iloc[0]))
                ax.plot(c["n_params"], c["r"], color=colors[i % 10], lw=0.8, ls=":")
            else:
                ax.plot(c["n_params"], c["r"], color=colors[i % 10], lw=1.2, label=name)
        for model, gm in g.groupby("model"):
            cm = mean_curve(gm, "n_params")
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
        e = ensemble[ensemble["roi"] == roi]
        if not e.empty:
            ce = mean_curve(e, "n_params")
            ax.plot(ce["n_params"], ce["r"], "*", color=colors[i % 10], ms=12, mec="black")
    for model, mk in markers.items():
        ax.plot([], [], color="gray", marker=mk, ls="none", label=model)
    if not ensemble.empty:
        ax.plot([], [], "*", color="gray", mec="black", ms=12, label="ensemble (Σ parameters)")
    finish_scaling_axes(ax, "model parameters", f"Parameter scaling at {size} training samples")
    if out:
        save_figure(fig, *out)
    return fig


def plot_roi_scores(
    scores: pd.DataFrame,
    ensemble: pd.DataFrame,
    model: str,
    size: int,
    atlases: list[str],
    *out: str | Path,
) -> plt.Figure:
    """Study 1, Fig. 3: noise-normalised score per ROI (grouped by atlas), one bar per
    subject; the ensemble's mean over subjects as black diamonds when given."""
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
    if not ensemble.empty:
        e = ensemble[ensemble["atlas"].isin(atlases)].groupby(["atlas", "roi"])["nn_r2"].mean()
        e = e.reindex(table.index)
        ax.plot(xs, e.to_numpy(), "D", color="black", ms=5, label="ensemble (mean)")
    ax.set_ylabel("noise-normalised accuracy (% of explainable variance)")
    ax.set_ylim(0, 100)
    ax.set_title(f"{model}, {size} training samples ({', '.join(atlases)})", fontsize=9)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(alpha=0.3, axis="y")
    if out:
        save_figure(fig, *out)
    return fig


def figure_data_scaling(
    scores_path: str | Path,
    fits_path: str | Path,
    extrapolation_path: str | Path,
    atlas: str,
    model: str,
    *out: str | Path,
    label: str | None = None,
) -> plt.Figure:
    """:func:`plot_data_scaling` of ``model``'s scores over the ROIs of ``atlas``, its data
    scaling laws and their extrapolations; the ensemble's stars unless ``model`` is it.
    ``label``: what the title names (default the model)."""
    scores = read_scores(scores_path)
    ensemble = ensemble_rows(scores, atlas) if model != ENSEMBLE else scores.iloc[:0]
    fits, extrapolation = read_table(fits_path), read_table(extrapolation_path)
    return plot_data_scaling(
        scaling_rows(scores, atlas, model=model),
        fits,
        extrapolation[extrapolation["analysis"].isin(set(fits["analysis"]))],
        ensemble,
        label or model,
        *out,
    )


def figure_param_scaling(
    scores_path: str | Path,
    fits_path: str | Path,
    atlas: str,
    size: int,
    *out: str | Path,
    families: Mapping[str, str] | None = None,
) -> plt.Figure:
    """:func:`plot_param_scaling` of every model's scores at ``size`` over the ROIs of
    ``atlas``, with each family's parameter scaling laws and the ensemble at that size."""
    scores = read_scores(scores_path)
    return plot_param_scaling(
        scaling_rows(scores, atlas, size=size),
        read_table(fits_path),
        ensemble_rows(scores, atlas, size=size),
        size,
        *out,
        families=families,
    )


def figure_roi_scores(
    scores_path: str | Path, model: str, size: int, atlases: Sequence[str], *out: str | Path
) -> plt.Figure:
    """:func:`plot_roi_scores` of the final ``model`` at ``size`` over the ROIs of ``atlases``;
    the ensemble's diamonds at that size unless ``model`` is it."""
    scores = read_scores(scores_path)
    rows = scores[(scores["model"] == model) & (scores["size"] == size)]
    ensemble = ensemble_rows(scores, None, size=size) if model != ENSEMBLE else scores.iloc[:0]
    return plot_roi_scores(rows, ensemble, model, size, list(atlases), *out)
