"""Scaling analyses: accuracy against training size or parameter count, per ROI, with
bootstrap intervals on every parameter and extrapolation to a fraction of the noise ceiling.

A *curve* is an ROI's mean test r at each x (size N or parameter count P). Per subject it
is the mean over draws (random subsamples) of the mean over the ROI's voxels; pooled, the
mean over subjects; the ROI ``mean`` is the mean over the atlas's ROIs. The ceiling of a
curve is the same mean of the voxels' noise ceilings in r units (√(NC/100); 1 where the
dataset has none). Both laws of :mod:`encscale.scaling.laws` are fitted to each curve.

Parameter laws are fitted within a *family* of models (the models' ``family`` in the
config, e.g. EVA-02-CLIP B/L/E), one per family of two models or more: the first study found
accuracy log-linear in parameters within a series, not across architectures. Other models
are points in the figure only.

Uncertainty: each bootstrap resample draws, per subject and x, the draws with replacement,
and per subject and ROI the voxels with replacement (one multiset of voxels for every x and
draw, so the curve stays paired), and refits. Intervals are percentiles of the resamples.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from encscale.contracts import read_fit, read_responses
from encscale.encoding.ensemble import ENSEMBLE
from encscale.encoding.scores import roi_masks
from encscale.io import write_tsv
from encscale.jobs import progress
from encscale.metrics import ceiling_r
from encscale.scaling import laws
from encscale.seeds import named_seed

log = logging.getLogger(__name__)

POWER_FIELDS = ("r_inf", "A", "alpha", "gap", "loss")
FIT_COLUMNS = [
    "analysis",
    "family",
    "scope",
    "roi",
    "law",
    "n_x",
    "x_min",
    "x_max",
    "ceiling_r",
    *(f"{p}{s}" for p in ("a", "b", "r_inf", "A", "alpha") for s in ("", "_lo", "_hi")),
    "aic",
    "heldout_error",
    "preferred",
]
EXTRAPOLATION_COLUMNS = [
    "analysis",
    "family",
    "scope",
    "roi",
    "law",
    "fraction",
    "target_r",
    "x",
    "x_lo",
    "x_hi",
    "p_reached",
]
POOLED = "pooled"
MEAN_ROI = "mean"
VOXEL_CHUNK = 128  # bootstrap resamples per voxel-weight matrix


@dataclass(frozen=True)
class Part:
    """One ROI of one subject: per-voxel test r (n_x, n_draws, V) and ceilings in r (V,)."""

    r: np.ndarray
    ceiling: np.ndarray


def load_curves(
    fit_paths: Iterable[str | Path],
    responses: Mapping[str, str | Path],
    x_attr: str,
    atlas: str,
) -> tuple[np.ndarray, dict[str, dict[str, list[Part]]], bool]:
    """Per-voxel accuracies of the fits, by ROI of ``atlas`` and subject.

    ``x_attr``: the fit attribute on the x axis (``size`` or ``n_params``); every subject
    needs the same x values and the same number of draws at each. Returns the sorted x
    values, {roi: {subject: [Part]}} (the ROI ``mean`` holds every ROI's part) and whether
    the noise ceilings are known.
    """
    runs: dict[str, dict[float, list[np.ndarray]]] = {}
    for path in progress(fit_paths, desc=f"reading fits by {x_attr}", unit="fits", write=log.info):
        fit = read_fit(path, ["test_r"])
        r = fit.test_r.astype(np.float32)
        subject, x = str(fit.attrs["subject"]), float(fit.attrs[x_attr])
        runs.setdefault(subject, {}).setdefault(x, []).append(r)
    if not runs:
        raise ValueError("no fits given")
    xs = np.array(sorted(next(iter(runs.values()))), dtype=np.float64)
    curves: dict[str, dict[str, list[Part]]] = {}
    known = True
    for subject, by_x in runs.items():
        if subject not in responses:
            raise KeyError(f"no responses file given for {subject}")
        if sorted(by_x) != list(xs) or len({len(v) for v in by_x.values()}) != 1:
            raise ValueError(
                f"{subject}: fits at {x_attr} {sorted(by_x)} with draws "
                f"{[len(by_x[x]) for x in sorted(by_x)]}; every subject needs the same x "
                f"values {list(xs)} and the same draws at each"
            )
        r = np.stack([np.stack(by_x[x]) for x in xs])  # (n_x, n_draws, V)
        resp = read_responses(responses[subject], ["noise_ceiling"], optional=["rois"])
        nc = resp.noise_ceiling.astype(np.float64)
        masks = {roi: m for (a, roi), m in roi_masks(resp.rois, nc.size).items() if a == atlas}
        if nc.size != r.shape[2]:
            raise ValueError(
                f"{responses[subject]}: {nc.size} voxels, but the fits of {subject} have "
                f"{r.shape[2]}"
            )
        if not masks:
            raise KeyError(f"{responses[subject]}: atlas '{atlas}' has no ROI")
        known &= bool(np.isfinite(nc).all())
        ceil = np.where(np.isfinite(nc), ceiling_r(np.nan_to_num(nc)), 1.0)
        parts = {roi: Part(r[:, :, m], ceil[m]) for roi, m in masks.items() if m.any()}
        for roi, part in parts.items():
            curves.setdefault(roi, {})[subject] = [part]
        curves.setdefault(MEAN_ROI, {})[subject] = list(parts.values())
    return xs, curves, known


def bootstrap_curves(
    parts_by_subject: Mapping[str, Sequence[Part]], n_boot: int, seed: int
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{scope: (y (1 + n_boot, n_x), ceiling (1 + n_boot,))} of each subject and ``pooled``:
    row 0 from the data, rows 1… from the resamples."""
    rng = np.random.default_rng(seed)
    per_subject = {}
    for subject, parts in parts_by_subject.items():
        n_x, n_draws = parts[0].r.shape[:2]
        draws = np.concatenate(
            [
                np.broadcast_to(np.arange(n_draws), (1, n_x, n_draws)),
                rng.integers(0, n_draws, (n_boot, n_x, n_draws)),
            ]
        )
        ys, cs = [], []
        for part in parts:
            means, ceils = _voxel_resampled_means(part, n_boot, rng)  # (1+B, n_x, n_draws)
            ys.append(np.take_along_axis(means, draws, axis=2).mean(axis=2))
            cs.append(ceils)
        per_subject[subject] = (np.mean(ys, axis=0), np.mean(cs, axis=0))
    per_subject[POOLED] = (
        np.mean([y for y, _ in per_subject.values()], axis=0),
        np.mean([c for _, c in per_subject.values()], axis=0),
    )
    return per_subject


def _voxel_resampled_means(
    part: Part, n_boot: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Voxel means of ``part.r`` (1 + n_boot, n_x, n_draws) and of its ceilings (1 + n_boot,)."""
    n_x, n_draws, n_vox = part.r.shape
    flat = part.r.reshape(n_x * n_draws, n_vox).astype(np.float64)
    means = [flat.mean(axis=1)[None]]
    ceils = [np.array([part.ceiling.mean()])]
    for start in range(0, n_boot, VOXEL_CHUNK):
        size = min(VOXEL_CHUNK, n_boot - start)
        weights = rng.multinomial(n_vox, np.full(n_vox, 1.0 / n_vox), size=size) / n_vox
        means.append(weights @ flat.T)
        ceils.append(weights @ part.ceiling)
    return np.concatenate(means).reshape(-1, n_x, n_draws), np.concatenate(ceils)


def fit_laws(
    xs: np.ndarray, y: np.ndarray, ceiling: np.ndarray, fractions: Sequence[float], level: float
) -> tuple[list[dict], list[dict]]:
    """Both laws fitted to row 0 of ``y`` (estimates) and to rows 1… (intervals).

    Returns fit rows (one per law) and extrapolation rows (law × fraction of the ceiling;
    ``fractions`` empty when the ceiling is unknown).
    """
    tail = 100 * (1 - level) / 2
    a, b = laws.fit_loglinear(xs, y)
    values = {"loglinear": {"a": a, "b": b}}
    predicted = {"loglinear": laws.predict_loglinear(a[:1], b[:1], xs)[0]}
    if np.unique(xs).size >= 3:
        power0 = laws.fit_power_law(xs, y[:1], ceiling[:1])
        power_b = laws.fit_power_law(xs, y[1:], ceiling[1:], start=power0)
        power = laws.PowerLaw(
            *(np.concatenate([getattr(power0, f), getattr(power_b, f)]) for f in POWER_FIELDS)
        )
        values["power"] = {"r_inf": power.r_inf, "A": power.A, "alpha": power.alpha}
        predicted["power"] = power0.predict(xs)[0]
    n_params = {"loglinear": 2, "power": 3}
    aic = {law: float(laws.aic(y[0], predicted[law], n_params[law])[0]) for law in predicted}
    heldout = _heldout_errors(xs, y[0], ceiling[0])
    fit_rows, extrapolation_rows = [], []
    for law in predicted:  # the power law needs three x values or more
        row = dict(
            law=law,
            n_x=len(xs),
            x_min=xs.min(),
            x_max=xs.max(),
            ceiling_r=ceiling[0],
            aic=aic[law],
            heldout_error=heldout[law],
            preferred=aic[law] == min(aic.values()),
        )
        for name, v in values[law].items():
            lo, hi = np.percentile(v[1:], [tail, 100 - tail])
            row.update({name: v[0], f"{name}_lo": lo, f"{name}_hi": hi})
        fit_rows.append(row)
        for fraction in fractions:
            target = fraction * ceiling
            if law == "loglinear":
                reach = laws.size_to_reach_loglinear(a, b, target)
            else:
                reach = laws.size_to_reach_power(power, target)
            lo, hi = np.percentile(reach[1:], [tail, 100 - tail], method="inverted_cdf")
            extrapolation_rows.append(
                dict(
                    law=law,
                    fraction=fraction,
                    target_r=target[0],
                    x=reach[0],
                    x_lo=lo,
                    x_hi=hi,
                    p_reached=float(np.isfinite(reach[1:]).mean()),
                )
            )
    return fit_rows, extrapolation_rows


def _heldout_errors(xs: np.ndarray, y: np.ndarray, ceiling: float) -> dict[str, float]:
    """Each law fitted without the largest x, its prediction there minus the observed r
    (NaN when too few x values remain for the law)."""
    keep = xs < xs.max()
    out = {"loglinear": np.nan, "power": np.nan}
    if np.unique(xs[keep]).size >= 2:
        a, b = laws.fit_loglinear(xs[keep], y[None, keep])
        out["loglinear"] = float(laws.predict_loglinear(a, b, xs[~keep])[0, 0] - y[~keep][0])
    if np.unique(xs[keep]).size >= 3:
        law = laws.fit_power_law(xs[keep], y[None, keep], ceiling)
        out["power"] = float(law.predict(xs[~keep])[0, 0] - y[~keep][0])
    return out


def scaling_tables(
    analysis: str,
    xs: np.ndarray,
    curves: Mapping[str, Mapping[str, Sequence[Part]]],
    *,
    ceiling_known: bool,
    n_boot: int,
    seed: int,
    fractions: Sequence[float],
    level: float = 0.95,
    family: str = "",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fits and extrapolations of every ROI × scope (each subject, and pooled).

    Each ROI's bootstrap is seeded from ``seed``, the ROI's name and the ``family`` (a
    parameter law's), so adding an ROI, a subject or a family leaves the others' resamples
    unchanged. Extrapolations need known ceilings.
    """
    fit_rows, extrapolation_rows = [], []
    rois = progress(
        curves.items(),
        total=len(curves),
        desc=f"{analysis} laws" + (f" of {family}" if family else ""),
        unit="ROIs",
        write=log.info,
    )
    for roi, parts_by_subject in rois:
        names = (analysis, roi) if not family else (analysis, family, roi)
        scopes = bootstrap_curves(parts_by_subject, n_boot, named_seed(seed, *names))
        for scope, (y, ceiling) in scopes.items():
            fits, extrapolations = fit_laws(
                xs, y, ceiling, fractions if ceiling_known else (), level
            )
            key = dict(analysis=analysis, family=family, scope=scope, roi=roi)
            fit_rows += [{**key, **row} for row in fits]
            extrapolation_rows += [{**key, **row} for row in extrapolations]
    return (
        pd.DataFrame(fit_rows, columns=FIT_COLUMNS),
        pd.DataFrame(extrapolation_rows, columns=EXTRAPOLATION_COLUMNS),
    )


def write_scaling_tables(
    data_fits: Sequence[str | Path],
    param_fits: Sequence[str | Path],
    subjects: Sequence[str],
    responses_paths: Sequence[str | Path],
    settings: Mapping[str, Any],
    data_out: str | Path,
    param_out: str | Path,
    extrapolation_out: str | Path,
    families: Mapping[str, str] | None = None,
) -> None:
    """Write the data-scaling (x: the fits' ``size``) and parameter-scaling (x: ``n_params``)
    tables of every ROI × scope (:func:`scaling_tables`) and their extrapolations, data then
    parameters, in one table.

    ``responses_paths``: the responses file of each of ``subjects``; ``settings``: the
    study's ``scaling`` config (``atlas``, ``n_bootstrap``, ``seed``, ``ceiling_fractions``);
    ``families``: {model: family}; the parameter laws are fitted per family of two models or
    more (:func:`family_fits`), the rows' ``family`` column names it.
    """
    families = families or {}
    responses = dict(zip(subjects, responses_paths, strict=True))
    data_model = str(read_fit(data_fits[0]).attrs["model"]) if data_fits else ""
    groups = [("data", families.get(data_model, ""), "size", data_fits)]
    param_groups = family_fits(param_fits, families)
    if not param_groups:
        log.warning(
            "no parameter scaling law: no family of two models or more (set each model's "
            "family in the config: models.<name>.family); the models are points only"
        )
    groups += [("param", f, "n_params", paths) for f, paths in param_groups]
    tables: dict[str, list[pd.DataFrame]] = {"data": [], "param": []}
    extrapolations = []
    for analysis, family, x_attr, fits in groups:
        table, extrapolation = _analysis_tables(fits, responses, settings, analysis, x_attr, family)
        tables[analysis].append(table)
        extrapolations.append(extrapolation)
    for analysis, out in (("data", data_out), ("param", param_out)):
        frames = tables[analysis] or [pd.DataFrame(columns=FIT_COLUMNS)]
        write_tsv(pd.concat(frames, ignore_index=True), out)
    frames = extrapolations or [pd.DataFrame(columns=EXTRAPOLATION_COLUMNS)]
    write_tsv(pd.concat(frames, ignore_index=True), extrapolation_out)


def write_data_scaling_table(
    fits: Sequence[str | Path],
    subjects: Sequence[str],
    responses_paths: Sequence[str | Path],
    settings: Mapping[str, Any],
    analysis: str,
    out: str | Path,
    extrapolation_out: str | Path,
) -> None:
    """One data-scaling table (x: the fits' ``size``) and its extrapolations, as
    :func:`write_scaling_tables` writes them, for another set of fits under the name
    ``analysis`` (e.g. ``data_fixed``: one fixed feature set at every size)."""
    responses = dict(zip(subjects, responses_paths, strict=True))
    table, extrapolation = _analysis_tables(fits, responses, settings, analysis, "size")
    write_tsv(table, out)
    write_tsv(extrapolation, extrapolation_out)


def _analysis_tables(
    fits: Sequence[str | Path],
    responses: Mapping[str, str | Path],
    settings: Mapping[str, Any],
    analysis: str,
    x_attr: str,
    family: str = "",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`scaling_tables` of the fits' curves against their ``x_attr``."""
    xs, curves, known = load_curves(fits, responses, x_attr, settings["atlas"])
    return scaling_tables(
        analysis,
        xs,
        curves,
        ceiling_known=known,
        n_boot=settings["n_bootstrap"],
        seed=settings["seed"],
        fractions=settings["ceiling_fractions"],
        family=family,
    )


def family_fits(
    fit_paths: Iterable[str | Path], families: Mapping[str, str]
) -> list[tuple[str, list[str | Path]]]:
    """[(family, its models' fit files)] of every family with two models or more among the
    fits, in order of first appearance; a model without a family is a family of its own."""
    by_family: dict[str, dict[str, list[str | Path]]] = {}
    for path in fit_paths:
        model = str(read_fit(path).attrs["model"])
        by_family.setdefault(families.get(model, model), {}).setdefault(model, []).append(path)
    return [
        (family, [p for paths in models.values() for p in paths])
        for family, models in by_family.items()
        if len(models) >= 2
    ]


def read_scores(path: str | Path) -> pd.DataFrame:
    """The tidy scores table (:func:`encscale.encoding.scores.collect_scores`)."""
    return pd.read_csv(path, sep="\t", dtype={"subject": str, "model": str})


def read_table(path: str | Path) -> pd.DataFrame:
    """A scaling or extrapolation table, as written by the workflow."""
    return pd.read_csv(path, sep="\t", dtype={"scope": str, "roi": str})


def scaling_rows(
    scores: pd.DataFrame, atlas: str, *, model: str | None = None, size: int | None = None
) -> pd.DataFrame:
    """Scores of one atlas's ROIs for the data-scaling analysis (one ``model``, every size)
    or the parameter-scaling one (every model but the ensemble at one ``size``)."""
    rows = scores[scores["atlas"] == atlas]
    if model is not None:
        rows = rows[rows["model"] == model]
        if rows.empty:
            raise ValueError(f"no scores for model '{model}' and atlas '{atlas}'")
    if size is not None:
        rows = rows[(rows["size"] == size) & (rows["model"] != ENSEMBLE)]
        if rows["model"].nunique() < 2:
            raise ValueError(f"parameter scaling needs two models or more at size {size}")
    return rows


def ensemble_rows(scores: pd.DataFrame, atlas: str | None, size: int | None = None) -> pd.DataFrame:
    """The ensemble's scores (of one atlas and size when given; empty without an ensemble)."""
    rows = scores[scores["model"] == ENSEMBLE]
    if atlas is not None:
        rows = rows[rows["atlas"] == atlas]
    return rows if size is None else rows[rows["size"] == size]


def geometric_sizes(smallest: int, largest: int, num: int) -> list[int]:
    """``num`` training sizes from ``smallest`` to ``largest`` on a geometric grid, rounded."""
    if not 0 < smallest < largest or num < 2:
        raise ValueError(
            f"a geometric grid needs 0 < min < max and num >= 2 (got {smallest}, {largest}, {num})"
        )
    sizes = sorted({int(round(s)) for s in np.geomspace(smallest, largest, num)})
    if len(sizes) < num:
        raise ValueError(f"{num} sizes from {smallest} to {largest} round to duplicates")
    return sizes
