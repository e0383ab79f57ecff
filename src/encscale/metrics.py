"""Accuracy measures: column-wise Pearson r and NSD's noise ceiling."""

from __future__ import annotations

import numpy as np


def pearson_r(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Pearson correlation of each column. (n, v) × (n, v) → (v,); 0 where a column is constant."""
    yt = y_true - y_true.mean(axis=0)
    yp = y_pred - y_pred.mean(axis=0)
    num = (yt * yp).sum(axis=0)
    den = np.sqrt((yt**2).sum(axis=0) * (yp**2).sum(axis=0))
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def noise_ceiling(ncsnr: np.ndarray, n_repeats: float) -> np.ndarray:
    """NSD's noise ceiling in percent of explainable variance: 100·ncsnr²/(ncsnr² + 1/n).

    ``n_repeats`` is the number of trials averaged per image in the data being predicted.
    """
    s2 = np.square(ncsnr, dtype=np.float64)
    return 100.0 * s2 / (s2 + 1.0 / n_repeats)


def ceiling_r(nc_percent: np.ndarray) -> np.ndarray:
    """Noise ceiling in correlation units: the largest expected r, √(NC/100)."""
    return np.sqrt(np.asarray(nc_percent) / 100.0)
