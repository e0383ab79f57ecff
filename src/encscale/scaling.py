"""Log-linear scaling laws r = a + b·log10(x), per ROI, with bootstrap intervals on b.

``x`` is the training-set size (data scaling) or the model's parameter count (parameter
scaling). Points are the per-subject, per-draw mean r of an ROI; the bootstrap resamples
those points with replacement within each x, so every resample keeps the design.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SCALING_COLUMNS = ["roi", "n_points", "a", "b", "b_lo", "b_hi", "x_min", "x_max"]


def fit_loglinear(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares intercept a and slope b of y = a + b·log10(x)."""
    lx = np.log10(np.asarray(x, dtype=np.float64))
    if np.unique(lx).size < 2:
        raise ValueError("a log-linear fit needs at least two distinct x values")
    b, a = np.polyfit(lx, np.asarray(y, dtype=np.float64), 1)
    return float(a), float(b)


def bootstrap_slope(
    x: np.ndarray, y: np.ndarray, n_boot: int, seed: int, level: float = 0.95
) -> tuple[float, float]:
    """Percentile interval of the slope b over ``n_boot`` resamples stratified by x."""
    x, y = np.asarray(x), np.asarray(y)
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(x == v) for v in np.unique(x)]
    slopes = np.empty(n_boot)
    for i in range(n_boot):
        idx = np.concatenate([rng.choice(g, size=g.size, replace=True) for g in groups])
        slopes[i] = fit_loglinear(x[idx], y[idx])[1]
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(slopes, [tail, 100 - tail])
    return float(lo), float(hi)


def fit_scaling(
    scores: pd.DataFrame, x: str, *, metric: str = "r", n_boot: int = 1000, seed: int = 0
) -> pd.DataFrame:
    """One row per ROI (and ``mean`` over ROIs) with a, b and b's 95 % bootstrap interval.

    ``scores`` holds one row per subject × draw × x × ROI (a single atlas) with the column
    ``x`` and the accuracy column ``metric``.
    """
    mean_rows = scores.groupby([c for c in ("subject", "seed", x) if c in scores], as_index=False)[
        metric
    ].mean()
    parts = [(roi, g) for roi, g in scores.groupby("roi", sort=False)] + [("mean", mean_rows)]
    rows = []
    for i, (roi, g) in enumerate(parts):
        a, b = fit_loglinear(g[x].to_numpy(), g[metric].to_numpy())
        lo, hi = bootstrap_slope(g[x].to_numpy(), g[metric].to_numpy(), n_boot, seed + i)
        rows.append(
            dict(
                roi=roi,
                n_points=len(g),
                a=a,
                b=b,
                b_lo=lo,
                b_hi=hi,
                x_min=g[x].min(),
                x_max=g[x].max(),
            )
        )
    return pd.DataFrame(rows, columns=SCALING_COLUMNS)


def data_scaling_scores(scores: pd.DataFrame, model: str, atlas: str) -> pd.DataFrame:
    """Rows of the data-scaling analysis: one model, every size, the ROIs of one atlas."""
    rows = scores[(scores["model"] == model) & (scores["atlas"] == atlas)]
    if rows.empty:
        raise ValueError(f"no scores for model '{model}' and atlas '{atlas}'")
    return rows


def param_scaling_scores(scores: pd.DataFrame, size: int, atlas: str) -> pd.DataFrame:
    """Rows of the parameter-scaling analysis: every model at one size, one atlas's ROIs."""
    rows = scores[(scores["size"] == size) & (scores["atlas"] == atlas)]
    if rows["model"].nunique() < 2:
        raise ValueError(f"parameter scaling needs two models or more at size {size}")
    return rows
