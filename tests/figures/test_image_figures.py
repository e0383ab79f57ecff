"""The first study's figures: what they draw (points, laws, extrapolation, ensemble, ceiling)
and the rows of the workflow's tables they select."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import LineCollection
from matplotlib.colors import same_color
from matplotlib.container import ErrorbarContainer
from matplotlib.lines import Line2D

from encscale.figures import images
from encscale.figures.style import R_LABEL

SIZES = [100, 300, 1000]
SUBJECT_OFFSETS = {"subj01": -0.01, "subj02": 0.01}  # their mean r differ by 0.02: SEM 0.01
SEED_OFFSETS = {0: -0.004, 1: 0.004}
# ROI: (atlas, r at 100 samples with the 1M-parameter model, gain per decade of samples)
ROIS = {
    "V1": ("streams", 0.30, 0.05),
    "FFA": ("streams", 0.10, 0.03),
    "all": ("all", 0.20, 0.04),  # another atlas: never in a streams figure
}
STREAMS = ["V1", "FFA"]
# model: (parameters, gain in r)
MODELS = {"small": (1e6, 0.0), "large": (1e8, 0.06), "ensemble": (1.01e8, 0.08)}
SEM = 0.01
# pooled power laws of the data scaling of "small" (A, alpha, r_inf)
LAWS = {"V1": (0.6, 0.3, 0.50), "FFA": (0.4, 0.2, 0.25), "mean": (0.5, 0.25, 0.40)}
CEILING_R = 0.62  # the mean ROI's noise ceiling, in r


def expected_r(model: str, roi: str, size: float) -> float:
    """The planted r (mean over subjects and draws) of a model, ROI and training size."""
    _, base, per_decade = ROIS[roi]
    return base + per_decade * np.log10(size / 100) + MODELS[model][1]


def nn_r2(r: float) -> float:
    return 100 * r / CEILING_R


def make_scores() -> pd.DataFrame:
    """One row per subject × model × size × draw × ROI, as in ``scores/scores.tsv``."""
    rows = []
    for model, (n_params, _) in MODELS.items():
        for size in SIZES:
            for subject, s_off in SUBJECT_OFFSETS.items():
                for seed, d_off in SEED_OFFSETS.items():
                    for roi, (atlas, _, _) in ROIS.items():
                        r = expected_r(model, roi, size) + s_off + d_off
                        rows.append(
                            dict(
                                subject=subject,
                                model=model,
                                n_params=int(n_params),
                                size=size,
                                seed=seed,
                                atlas=atlas,
                                roi=roi,
                                n_voxels=50,
                                r=r,
                                r_norm=r / CEILING_R,
                                nn_r2=nn_r2(r),
                                ceiling_r=CEILING_R,
                            )
                        )
    return pd.DataFrame(rows)


def fit_row(analysis: str, roi: str, law: str, A: float, alpha: float, r_inf: float, **kw):
    """A row of ``scaling/*_scaling.tsv`` (the columns the figures read)."""
    return dict(
        analysis=analysis,
        family=kw.get("family", "toy"),
        scope=kw.get("scope", "pooled"),
        roi=roi,
        law=law,
        x_min=kw.get("x_min", SIZES[0]),
        x_max=kw.get("x_max", SIZES[-1]),
        ceiling_r=CEILING_R,
        r_inf=r_inf,
        r_inf_lo=r_inf - 0.05,
        r_inf_hi=r_inf + 0.05,
        A=A,
        alpha=alpha,
        alpha_lo=alpha - 0.1,
        alpha_hi=alpha + 0.1,
    )


def make_data_fits() -> pd.DataFrame:
    rows = [fit_row("data", roi, "power", *law) for roi, law in LAWS.items()]
    # rows the figure must not draw: one subject's fit, and the log-linear law
    rows.append(fit_row("data", "V1", "power", 0.1, 0.9, 0.9, scope="subj01"))
    rows.append(fit_row("data", "FFA", "loglinear", np.nan, np.nan, np.nan))
    return pd.DataFrame(rows)


def extrapolation_row(analysis: str, law: str, fraction: float, x: float) -> dict:
    return dict(
        analysis=analysis,
        scope="pooled",
        roi="mean",
        law=law,
        fraction=fraction,
        target_r=fraction * CEILING_R,
        x=x,
        x_lo=x / 2,
        x_hi=x * 2,
        p_reached=1.0,
    )


def make_extrapolation() -> pd.DataFrame:
    return pd.DataFrame(
        [
            extrapolation_row("data", "power", 0.5, 2_000.0),
            extrapolation_row("data", "power", 0.8, 50_000.0),  # the dashed segment's end
            extrapolation_row("data", "power", 0.9, np.inf),  # never reached: no mark
            # other analyses and laws reach further; the data figure ignores them
            extrapolation_row("data", "loglinear", 0.8, 90_000.0),
            extrapolation_row("param", "power", 0.8, 3e5),
        ]
    )


def write_tables(tmp_path: Path) -> dict[str, Path]:
    paths = {
        "scores": tmp_path / "scores.tsv",
        "fits": tmp_path / "data_scaling.tsv",
        "extrapolation": tmp_path / "extrapolation.tsv",
    }
    make_scores().to_csv(paths["scores"], sep="\t", index=False)
    make_data_fits().to_csv(paths["fits"], sep="\t", index=False)
    make_extrapolation().to_csv(paths["extrapolation"], sep="\t", index=False)
    return paths


def law(roi: str, x: np.ndarray) -> np.ndarray:
    A, alpha, r_inf = LAWS[roi]
    return r_inf - A * np.asarray(x, dtype=float) ** -alpha


def errorbars(ax) -> list[tuple[Line2D, LineCollection]]:
    """(points, error bars) of every errorbar call, in drawing order."""
    out = []
    for container in ax.containers:
        if isinstance(container, ErrorbarContainer):
            points, _, (bars,) = container.lines
            out.append((points, bars))
    return out


def floats(values) -> np.ndarray:
    """Plotted data as floats (an errorbar's are an object array)."""
    return np.asarray(values, dtype=float)


def bar_half_heights(bars: LineCollection) -> np.ndarray:
    return np.array([abs(seg[1, 1] - seg[0, 1]) / 2 for seg in bars.get_segments()])


def labelled(ax) -> dict[str, Line2D]:
    return {line.get_label(): line for line in ax.get_lines()}


def dashed(ax, color) -> list[Line2D]:
    return [
        line
        for line in ax.get_lines()
        if line.get_linestyle() == "--" and same_color(line.get_color(), color)
    ]


def assert_saved(png: Path, svg: Path) -> None:
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n") and png.stat().st_size > 10_000
    assert "<svg" in svg.read_text()[:2000]


# Data scaling (Fig. 1) -------------------------------------------------------------------


def test_data_scaling_draws_each_roi_the_mean_and_the_ensemble(tmp_path):
    paths = write_tables(tmp_path)
    png, svg = tmp_path / "fig" / "data_scaling.png", tmp_path / "fig" / "data_scaling.svg"
    fig = images.figure_data_scaling(
        paths["scores"], paths["fits"], paths["extrapolation"], "streams", "small", png, svg
    )
    assert_saved(png, svg)
    (ax,) = fig.axes
    assert ax.get_xscale() == "log"
    assert ax.get_xlabel() == "training samples" and ax.get_ylabel() == R_LABEL
    assert ax.get_title() == "Data scaling: small"
    # the streams ROIs of "small" (mean ± SEM over subjects), then the mean over ROIs
    drawn = errorbars(ax)
    assert len(drawn) == len(STREAMS) + 1
    for (points, bars), roi in zip(drawn[:-1], STREAMS, strict=True):
        np.testing.assert_array_equal(floats(points.get_xdata()), SIZES)
        np.testing.assert_allclose(
            floats(points.get_ydata()), [expected_r("small", roi, n) for n in SIZES]
        )
        np.testing.assert_allclose(bar_half_heights(bars), SEM, atol=1e-12)
    points, bars = drawn[-1]
    mean = [np.mean([expected_r("small", roi, n) for roi in STREAMS]) for n in SIZES]
    np.testing.assert_allclose(floats(points.get_ydata()), mean)
    np.testing.assert_allclose(bar_half_heights(bars), SEM, atol=1e-12)
    assert same_color(points.get_color(), "black")
    # the ensemble: the mean over ROIs of its scores at each size
    ensemble = labelled(ax)["ensemble (mean over ROIs)"]
    assert ensemble.get_marker() == "*" and ensemble.get_linestyle() == "None"
    np.testing.assert_array_equal(ensemble.get_xdata(), SIZES)
    ensemble_r = [np.mean([expected_r("ensemble", roi, n) for roi in STREAMS]) for n in SIZES]
    np.testing.assert_allclose(ensemble.get_ydata(), ensemble_r)


def test_data_scaling_laws_are_the_pooled_power_laws_dashed_beyond_the_data(tmp_path):
    paths = write_tables(tmp_path)
    fig = images.figure_data_scaling(
        paths["scores"], paths["fits"], paths["extrapolation"], "streams", "small"
    )
    (ax,) = fig.axes
    lines = labelled(ax)
    x_end = 50_000.0  # the largest finite extrapolated size of the mean (data, power)
    colors = {
        roi: points.get_color()
        for (points, _), roi in zip(errorbars(ax), [*STREAMS, "mean"], strict=True)
    }
    for roi, name in (("V1", "V1"), ("FFA", "FFA"), ("mean", "mean over ROIs")):
        A, alpha, r_inf = LAWS[roi]
        label = f"{name}: r∞={r_inf:.2f} [{r_inf - 0.05:.2f}, {r_inf + 0.05:.2f}], "
        label += f"α={alpha:.2f} [{alpha - 0.1:.2f}, {alpha + 0.1:.2f}]"
        inside = lines[label]  # solid, over the data's sizes
        assert inside.get_linestyle() == "-"
        x = inside.get_xdata()
        np.testing.assert_allclose([x[0], x[-1]], [SIZES[0], SIZES[-1]])
        np.testing.assert_allclose(inside.get_ydata(), law(roi, x), rtol=1e-12)
        assert same_color(inside.get_color(), colors[roi])
        (beyond,) = dashed(ax, inside.get_color())  # on to where the extrapolation ends
        xb = beyond.get_xdata()
        np.testing.assert_allclose([xb[0], xb[-1]], [SIZES[-1], x_end])
        np.testing.assert_allclose(beyond.get_ydata(), law(roi, xb), rtol=1e-12)
    # the sizes reaching 50 % and 80 % of the ceiling are marked; 90 % is never reached
    crosses = [line for line in ax.get_lines() if line.get_marker() == "x"]
    points = sorted((line.get_xdata()[0], line.get_ydata()[0]) for line in crosses)
    np.testing.assert_allclose(points, [(2_000.0, 0.5 * CEILING_R), (50_000.0, 0.8 * CEILING_R)])
    assert sorted(t.get_text() for t in ax.texts) == ["50%", "80%"]
    ceiling = lines["noise ceiling (mean)"]
    np.testing.assert_allclose(ceiling.get_ydata(), [CEILING_R, CEILING_R])
    assert ceiling.get_linestyle() == ":"


def test_data_scaling_without_a_known_ceiling(tmp_path):
    """No extrapolation (unknown noise ceiling): no ceiling line and no marks, and the laws
    are extrapolated to 4 times the largest size."""
    paths = write_tables(tmp_path)
    make_extrapolation().iloc[:0].to_csv(paths["extrapolation"], sep="\t", index=False)
    fig = images.figure_data_scaling(
        paths["scores"], paths["fits"], paths["extrapolation"], "streams", "small"
    )
    (ax,) = fig.axes
    assert not any("noise ceiling" in label for label in labelled(ax))
    assert not [line for line in ax.get_lines() if line.get_marker() == "x"] and not ax.texts
    (beyond,) = dashed(ax, "black")
    np.testing.assert_allclose(beyond.get_xdata()[-1], 4 * SIZES[-1])


def test_data_scaling_of_the_ensemble_has_no_ensemble_stars(tmp_path):
    paths = write_tables(tmp_path)
    fig = images.figure_data_scaling(
        paths["scores"], paths["fits"], paths["extrapolation"], "streams", "ensemble"
    )
    (ax,) = fig.axes
    assert "ensemble (mean over ROIs)" not in labelled(ax)
    points, _ = errorbars(ax)[0]
    np.testing.assert_allclose(
        floats(points.get_ydata()), [expected_r("ensemble", "V1", n) for n in SIZES]
    )
    with pytest.raises(ValueError, match="no scores for model 'tiny'"):
        images.figure_data_scaling(
            paths["scores"], paths["fits"], paths["extrapolation"], "streams", "tiny"
        )


# Parameter scaling (Fig. 2) --------------------------------------------------------------


def test_param_scaling_draws_each_model_law_and_ensemble(tmp_path):
    paths = write_tables(tmp_path)
    fits = tmp_path / "param_scaling.tsv"
    v1 = (0.2, 0.15, 0.55)  # A, alpha, r_inf
    x_range = dict(x_min=1e6, x_max=1e8)
    rows = [
        fit_row("param", "V1", "power", *v1, **x_range),
        fit_row("param", "FFA", "power", np.nan, np.nan, np.nan, **x_range),  # failed fit
    ]
    pd.DataFrame(rows).to_csv(fits, sep="\t", index=False)
    png, svg = tmp_path / "param_scaling.png", tmp_path / "param_scaling.svg"
    families = {"small": "toy", "large": "toy"}
    fig = images.figure_param_scaling(
        paths["scores"], fits, "streams", 1000, png, svg, families=families
    )
    assert_saved(png, svg)
    (ax,) = fig.axes
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "model parameters"
    assert ax.get_title() == "Parameter scaling at 1000 training samples"
    # one point per ROI × model (not the ensemble), at its parameter count, with SEM bars
    drawn = errorbars(ax)
    expected = [(roi, model) for roi in STREAMS for model in ("large", "small")]
    assert len(drawn) == len(expected)
    for (points, bars), (roi, model) in zip(drawn, expected, strict=True):
        np.testing.assert_array_equal(floats(points.get_xdata()), [MODELS[model][0]])
        np.testing.assert_allclose(floats(points.get_ydata()), [expected_r(model, roi, 1000)])
        np.testing.assert_allclose(bar_half_heights(bars), SEM, atol=1e-12)
        assert points.get_marker() == {"large": "o", "small": "s"}[model]  # sorted names
    lines = labelled(ax)
    # V1: its law, dashed beyond the largest model to 4 times its parameters
    v1_label = "V1: r∞=0.55 [0.50, 0.60], α=0.15 [0.05, 0.25]"
    inside = lines[v1_label]
    x = inside.get_xdata()
    np.testing.assert_allclose([x[0], x[-1]], [1e6, 1e8])
    np.testing.assert_allclose(inside.get_ydata(), 0.55 - 0.2 * x**-0.15, rtol=1e-12)
    (beyond,) = dashed(ax, inside.get_color())
    np.testing.assert_allclose([beyond.get_xdata()[0], beyond.get_xdata()[-1]], [1e8, 4e8])
    # FFA: no law, a line through its models' points
    ffa = lines["FFA"]
    np.testing.assert_array_equal(ffa.get_xdata(), [1e6, 1e8])
    np.testing.assert_allclose(ffa.get_ydata(), [expected_r(m, "FFA", 1000) for m in MODELS][:2])
    # the ensemble: a star per ROI at its parameters (the sum of its members')
    stars = [line for line in ax.get_lines() if line.get_marker() == "*" and len(line.get_xdata())]
    np.testing.assert_allclose(
        [(line.get_xdata()[0], line.get_ydata()[0]) for line in stars],
        [(MODELS["ensemble"][0], expected_r("ensemble", roi, 1000)) for roi in STREAMS],
    )
    assert all(same_color(line.get_markeredgecolor(), "black") for line in stars)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == [v1_label, "FFA", "large", "small", "ensemble (Σ parameters)"]


def test_param_scaling_laws_and_lines_stay_within_families(tmp_path):
    """Two families and a model of none: each family's law over its own models only, and
    no line through the lone model, which is a point."""
    models = {"s": (1e6, 0.0, "eva"), "l": (1e8, 0.06, "eva"), "c1": (1e7, 0.02, "cnn")}
    models |= {"c2": (1e9, 0.03, "cnn"), "lone": (3e8, 0.1, None)}
    rows = []
    for model, (n_params, gain, _) in models.items():
        for subject, offset in SUBJECT_OFFSETS.items():
            for roi in STREAMS:
                r = ROIS[roi][1] + gain + offset
                rows.append(
                    dict(
                        subject=subject,
                        model=model,
                        n_params=n_params,
                        size=1000,
                        seed=0,
                        atlas="streams",
                        roi=roi,
                        r=r,
                    )
                )
    scores = pd.DataFrame(rows)
    fits = pd.DataFrame(
        [
            fit_row("param", "V1", "power", 0.2, 0.15, 0.55, family="eva", x_min=1e6, x_max=1e8),
            fit_row("param", "V1", "power", 0.1, 0.1, 0.45, family="cnn", x_min=1e7, x_max=1e9),
        ]
    )
    families = {m: f for m, (_, _, f) in models.items() if f}
    fig = images.plot_param_scaling(scores, fits, scores.iloc[:0], 1000, families=families)
    (ax,) = fig.axes
    lines = labelled(ax)
    eva = lines["V1, eva: r∞=0.55 [0.50, 0.60], α=0.15 [0.05, 0.25]"]
    cnn = lines["V1, cnn: r∞=0.45 [0.40, 0.50], α=0.10 [0.00, 0.20]"]
    np.testing.assert_allclose(eva.get_xdata()[[0, -1]], [1e6, 1e8])
    np.testing.assert_allclose(cnn.get_xdata()[[0, -1]], [1e7, 1e9])
    # FFA has no law: a line through each family's own points
    np.testing.assert_array_equal(lines["FFA, eva"].get_xdata(), [1e6, 1e8])
    np.testing.assert_array_equal(lines["FFA, cnn"].get_xdata(), [1e7, 1e9])
    # V1's laws: each family's points joined (dotted) beside its law
    dotted = [line for line in ax.get_lines() if line.get_linestyle() == ":"]
    assert sorted(tuple(floats(line.get_xdata())) for line in dotted) == [(1e6, 1e8), (1e7, 1e9)]
    drawn = [line for line in ax.get_lines() if len(line.get_xdata()) > 1]
    assert not any(3e8 in line.get_xdata() for line in drawn)  # the lone model: points only
    assert sum(3e8 in floats(p.get_xdata()) for p, _ in errorbars(ax)) == len(STREAMS)


# ROI scores (Fig. 3) ---------------------------------------------------------------------


def test_roi_scores_bars_are_the_final_model_per_subject(tmp_path):
    paths = write_tables(tmp_path)
    png, svg = tmp_path / "roi_scores.png", tmp_path / "roi_scores.svg"
    atlases = ["streams", "all"]
    fig = images.figure_roi_scores(paths["scores"], "large", 300, atlases, png, svg)
    assert_saved(png, svg)
    (ax,) = fig.axes
    order = ["FFA", "V1", "all"]  # by atlas as listed, then by name
    assert [t.get_text() for t in ax.get_xticklabels()] == order
    bars = ax.patches
    assert len(bars) == len(order) * len(SUBJECT_OFFSETS)
    heights = np.array([b.get_height() for b in bars]).reshape(len(SUBJECT_OFFSETS), len(order))
    for row, offset in zip(heights, SUBJECT_OFFSETS.values(), strict=True):
        # each subject's mean over draws of the final model at the final size
        np.testing.assert_allclose(
            row, [nn_r2(expected_r("large", roi, 300) + offset) for roi in order]
        )
    # bars of one ROI sit side by side around its tick
    centers = np.array([b.get_x() + b.get_width() / 2 for b in bars]).reshape(heights.shape)
    np.testing.assert_allclose(centers.mean(axis=0), [0, 1, 2])
    # a line between the atlases
    separators = [line for line in ax.get_lines() if line.get_linestyle() == "-"]
    assert [line.get_xdata()[0] for line in separators] == [1.5]
    diamonds = labelled(ax)["ensemble (mean)"]
    np.testing.assert_allclose(diamonds.get_xdata(), [0, 1, 2])
    np.testing.assert_allclose(
        diamonds.get_ydata(), [nn_r2(expected_r("ensemble", roi, 300)) for roi in order]
    )
    assert ax.get_ylim() == (0, 100)
    assert ax.get_title() == "large, 300 training samples (streams, all)"
    assert ax.get_ylabel() == "noise-normalised accuracy (% of explainable variance)"
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert sorted(legend) == sorted([*SUBJECT_OFFSETS, "ensemble (mean)"])


def test_roi_scores_of_the_ensemble_has_no_diamonds(tmp_path):
    paths = write_tables(tmp_path)
    fig = images.figure_roi_scores(paths["scores"], "ensemble", 1000, ["streams"])
    (ax,) = fig.axes
    assert "ensemble (mean)" not in labelled(ax)
    heights = [b.get_height() for b in ax.patches]
    expected = [
        nn_r2(expected_r("ensemble", roi, 1000) + offset)
        for offset in SUBJECT_OFFSETS.values()
        for roi in ("FFA", "V1")
    ]
    np.testing.assert_allclose(heights, expected)
