"""ROI scores of a fit: mean Pearson r, raw and noise-normalised, one row per ROI.

Noise normalisation follows the Algonauts 2023 challenge: ``nn_r2`` is the mean over an
ROI's voxels of :func:`encscale.metrics.algonauts_score` (percent of explainable variance
explained, each voxel capped at 100), and ``r_norm`` the mean of ``r / √(NC/100)``, the
correlation relative to its ceiling, over the ROI's voxels whose ceiling reaches
``min_noise_ceiling`` percent (the others, counted in ``n_below_ceiling``, would divide by
nearly 0: ncsnr 0 gives NC 0). Both are NaN where the responses file's noise ceiling is NaN
(a dataset without ncsnr). ``edge_low`` and ``edge_high`` are the shares of an ROI's voxels
whose chosen penalty is the grid's smallest or largest while a wider grid could still
raise their score (NaN for an ensemble): more than :data:`EDGE_WARNING` of a fit's voxels
at either edge is logged as a warning, as the grid probably cuts off their best penalty.

Two kinds of voxel at an edge say nothing of the grid's range, and are not counted:

- voxels without a signal. With ``scoring`` r, only voxels whose cross-validated r beats
  chance count (``cv_score`` above :data:`CHANCE_Z` / √size, size the training samples):
  an undriven voxel takes the largest penalty whatever the grid (its best prediction is
  the mean). ``n_edge_voxels`` counts the voxels that do count (NaN where none does);
- voxels on a plateau. Near either limit of ridge (least squares as α → 0; with r, the
  kernel direction of an infinite penalty, whose correlation does not depend on the
  scale) the score's tail is linear in α, or in 1/α, so what penalties beyond an edge
  could still add is the edge's gain over the next penalty inward (the fit file's
  ``edge_gain``) divided by q − 1, q the ratio of those two penalties. A voxel counts
  when that exceeds :data:`EDGE_GAIN` in r (relative to the score with mse). Fits
  without ``edge_gain`` count every voxel at an edge.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from encscale.contracts import read_fit, read_responses
from encscale.metrics import algonauts_score, ceiling_r

log = logging.getLogger(__name__)

SCORE_COLUMNS = [
    "subject",
    "model",
    "n_params",
    "size",
    "seed",
    "atlas",
    "roi",
    "n_voxels",
    "r",
    "r_norm",
    "nn_r2",
    "ceiling_r",
    "n_below_ceiling",
    "edge_low",
    "edge_high",
    "n_edge_voxels",
]
MIN_NOISE_CEILING = 1.0  # percent of variance: the default of encoding.min_noise_ceiling
EDGE_WARNING = 0.05  # a fit whose voxels choose a penalty at the grid's edge more often warns
CHANCE_Z = 3.0  # a voxel's cross-validated r beats chance above CHANCE_Z / √(training size)
EDGE_GAIN = 1e-3  # a voxel at an edge counts if a wider grid could add more to its score


def roi_masks(
    rois: Mapping[tuple[str, str], np.ndarray], n_voxels: int
) -> dict[tuple[str, str], np.ndarray]:
    """A responses file's ROI masks (:attr:`encscale.contracts.Responses.rois`), keyed by
    (atlas, roi), after ("all", "all"): every one of the ``n_voxels`` voxels."""
    return {("all", "all"): np.ones(n_voxels, dtype=bool), **rois}


def score_fit(
    fit_path: str | Path, responses_path: str | Path, min_noise_ceiling: float = MIN_NOISE_CEILING
) -> pd.DataFrame:
    """One row per ROI (every atlas in the responses file, and ``all``) for one fit file;
    ``min_noise_ceiling`` (percent): voxels below it are left out of ``r_norm``."""
    fit = read_fit(fit_path, ["test_r"], optional=["best_alpha", "cv_score", "edge_gain"])
    r = fit.test_r.astype(np.float64)
    scoring = fit.attrs.get("scoring")
    low, high = penalty_edges(fit.best_alpha, fit.attrs.get("alphas"), r.shape[0])
    low, high = open_edges(low, high, fit.edge_gain, fit.attrs.get("alphas"), fit.cv_score, scoring)
    driven = driven_voxels(fit.cv_score, scoring, fit.attrs.get("size"))
    low, high = np.where(driven, low, np.nan), np.where(driven, high, np.nan)
    _warn_edges(fit_path, low, high, fit.attrs.get("alphas"))
    meta = {k: fit.attrs[k] for k in ("subject", "model", "n_params", "size", "seed")}
    resp = read_responses(responses_path, ["noise_ceiling"], optional=["rois"])
    nc = resp.noise_ceiling.astype(np.float64)
    masks = roi_masks(resp.rois, nc.shape[0])
    if nc.shape != r.shape:
        raise ValueError(f"{fit_path}: {r.shape[0]} voxels, but {responses_path} has {nc.shape[0]}")
    below = nc < min_noise_ceiling  # False where NC is NaN: r_norm stays NaN there
    r_norm = np.where(below, np.nan, r / np.sqrt(np.where(below, 1.0, nc) / 100.0))
    nn = algonauts_score(r, nc)
    rows = []
    for (atlas, roi), mask in masks.items():
        if not mask.any():
            continue
        rows.append(
            dict(
                meta,
                atlas=atlas,
                roi=roi,
                n_voxels=int(mask.sum()),
                r=r[mask].mean(),
                r_norm=_mean_kept(r_norm[mask], below[mask]),
                nn_r2=nn[mask].mean(),
                ceiling_r=ceiling_r(nc[mask]).mean(),
                n_below_ceiling=int(below[mask].sum()),
                edge_low=_mean_finite(low[mask]),
                edge_high=_mean_finite(high[mask]),
                n_edge_voxels=int(np.isfinite(low[mask]).sum()),
            )
        )
    df = pd.DataFrame(rows, columns=SCORE_COLUMNS)
    df["subject"] = df["subject"].astype(str)
    df["model"] = df["model"].astype(str)
    return df


def penalty_edges(
    best_alpha: np.ndarray | None, alphas: np.ndarray | None, n_voxels: int
) -> tuple[np.ndarray, np.ndarray]:
    """(V,) float: 1 where a voxel's chosen penalty is the grid's smallest (first array) or
    largest (second), else 0; NaN for a fit without penalties (an ensemble)."""
    if best_alpha is None or alphas is None or len(alphas) == 0:
        nan = np.full(n_voxels, np.nan)
        return nan, nan
    chosen = best_alpha.astype(np.float64)
    grid = np.asarray(alphas, dtype=np.float64)
    low = np.isclose(chosen, grid.min(), rtol=1e-6)
    high = np.isclose(chosen, grid.max(), rtol=1e-6)
    return low.astype(np.float64), high.astype(np.float64)


def open_edges(
    low: np.ndarray,
    high: np.ndarray,
    gain: np.ndarray | None,
    alphas: np.ndarray | None,
    score: np.ndarray | None,
    scoring: Any,
) -> tuple[np.ndarray, np.ndarray]:
    """``low`` and ``high`` of :func:`penalty_edges`, 0 where the voxel is on a plateau: what a
    wider grid could add, ``gain`` / (q − 1), is at most :data:`EDGE_GAIN` (times |score|
    with mse; module docstring). As they are without ``gain`` (an older fit file)."""
    grid = np.unique(np.asarray([] if alphas is None else alphas, dtype=np.float64))
    if gain is None or grid.size < 2:
        return low, high
    tolerance = EDGE_GAIN if scoring == "r" or score is None else EDGE_GAIN * np.abs(score)
    gain = gain.astype(np.float64)
    return (
        low * (gain / (grid[1] / grid[0] - 1) > tolerance),
        high * (gain / (grid[-1] / grid[-2] - 1) > tolerance),
    )


def driven_voxels(cv_score: np.ndarray | None, scoring: Any, size: Any) -> np.ndarray | bool:
    """Where a voxel's cross-validated r beats chance (module docstring); every voxel (True)
    without scores, or with another scoring than r."""
    if cv_score is None or scoring != "r" or not size:
        return True
    return cv_score > CHANCE_Z / np.sqrt(float(size))


def _mean_finite(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")


def _warn_edges(path: str | Path, low: np.ndarray, high: np.ndarray, alphas: Any) -> None:
    counted = np.isfinite(low)
    for share, edge, value in ((low, "smallest", np.min), (high, "largest", np.max)):
        if counted.any() and share[counted].mean() > EDGE_WARNING:
            log.warning(
                "%s: %.1f %% of the %d voxels with a signal chose the grid's %s penalty "
                "(%.3g) with their score still rising there: widen encoding.alphas",
                path,
                100 * share[counted].mean(),
                counted.sum(),
                edge,
                value(alphas),
            )


def _mean_kept(values: np.ndarray, left_out: np.ndarray) -> float:
    """Mean of ``values`` where not ``left_out``; NaN if every value is left out."""
    kept = values[~left_out]
    return float(kept.mean()) if kept.size else float("nan")


def collect_scores(paths: list[str | Path]) -> pd.DataFrame:
    """Concatenate per-fit score tables (TSV) into one tidy table."""
    frames = [pd.read_csv(p, sep="\t", dtype={"subject": str, "model": str}) for p in paths]
    return pd.concat(frames, ignore_index=True)


EDGE_COLUMNS = ["subject", "model", "size", "seed", "n_edge_voxels", "edge_low", "edge_high"]


def edge_fits(scores: pd.DataFrame) -> pd.DataFrame:
    """The fits of a score table whose voxels with a signal (ROI ``all``) choose a penalty at
    either edge of the grid more often than :data:`EDGE_WARNING`, each logged as a warning;
    no row: the grid holds every chosen penalty."""
    whole = scores[(scores["atlas"] == "all") & (scores["roi"] == "all")]
    over = whole[(whole["edge_low"] > EDGE_WARNING) | (whole["edge_high"] > EDGE_WARNING)]
    for row in over.itertuples():
        log.warning(
            "%s %s n=%s seed %s: %.1f %% at the smallest penalty, %.1f %% at the largest, of "
            "%d voxels with a signal: widen encoding.alphas",
            row.subject,
            row.model,
            row.size,
            row.seed,
            100 * row.edge_low,
            100 * row.edge_high,
            row.n_edge_voxels,
        )
    return over[EDGE_COLUMNS].reset_index(drop=True)
