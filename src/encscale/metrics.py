"""Accuracy measures: column-wise Pearson r, NSD's and the Algonauts 2023 noise ceilings, and
the Algonauts 2023 noise-normalised score.

Both noise ceilings are 100·ncsnr²/(ncsnr² + k) percent of explainable variance, with k the
noise variance of an average of repeats relative to one trial's: 1/n for NSD's n repeats, the
mean over images of 1/n_i for the Algonauts 2023 challenge's test images with n_i repeats
each (its (A/3 + B/2 + C/1)/(A + B + C)).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# The Algonauts 2023 score raises a zero noise ceiling (fraction) to this before dividing.
ALGONAUTS_MIN_CEILING = 1e-14


def pearson_r(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Pearson correlation of each column. (n, v) × (n, v) → (v,); 0 where a column is constant."""
    yt = y_true - y_true.mean(axis=0)
    yp = y_pred - y_pred.mean(axis=0)
    num = (yt * yp).sum(axis=0)
    den = np.sqrt((yt**2).sum(axis=0) * (yp**2).sum(axis=0))
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def _ceiling_percent(ncsnr: np.ndarray, k: float) -> np.ndarray:
    """100·ncsnr²/(ncsnr² + k), float64; NaN where ncsnr is NaN."""
    s2 = np.square(ncsnr, dtype=np.float64)
    return 100.0 * s2 / (s2 + k)


def noise_ceiling(ncsnr: np.ndarray, n_repeats: float) -> np.ndarray:
    """NSD's noise ceiling in percent of explainable variance: 100·ncsnr²/(ncsnr² + 1/n).

    ``n_repeats`` is the number of trials averaged per image in the data being predicted.
    """
    return _ceiling_percent(ncsnr, 1.0 / n_repeats)


def noise_ceiling_k(n_repeats_per_image: Sequence[int] | np.ndarray) -> float:
    """The Algonauts 2023 ceiling's k: the mean over images of 1/n_i, (n_images,) → float.

    With A, B, C images of 3, 2, 1 repeats this is (A/3 + B/2 + C/1)/(A + B + C).
    """
    n = np.asarray(n_repeats_per_image)
    if n.ndim != 1 or n.size == 0:
        raise ValueError(f"repeats per image must be a non-empty 1-D array, got shape {n.shape}")
    if np.any(n < 1):
        raise ValueError(f"repeats per image must be at least 1, got {n.min()}")
    return float(np.mean(1.0 / n.astype(np.float64)))


def algonauts_noise_ceiling(
    ncsnr: np.ndarray, n_repeats_per_image: Sequence[int] | np.ndarray
) -> np.ndarray:
    """The Algonauts 2023 noise ceiling in percent: 100·ncsnr²/(ncsnr² + k). (V,) → (V,).

    k = :func:`noise_ceiling_k` of the repeats of each predicted image; NaN where ncsnr is
    NaN. Equals :func:`noise_ceiling` with n = 1/k (NSD's effective number of repeats).
    """
    return _ceiling_percent(ncsnr, noise_ceiling_k(n_repeats_per_image))


def algonauts_score(r: np.ndarray, nc_percent: np.ndarray) -> np.ndarray:
    """The Algonauts 2023 per-vertex score in percent: 100·max(r, 0)²/NC, capped at 100.

    (V,), (V,) percent → (V,) float64. As in the challenge's evaluation, a ceiling below
    1e-14 (as a fraction; 0 included, since ncsnr 0 gives NC 0) is raised to 1e-14, so a
    vertex with no explainable variance scores 100 if r > 0 and 0 otherwise. NaN where NC
    or r is NaN (e.g. a dataset without ncsnr).
    """
    r = np.asarray(r, dtype=np.float64)
    nc = np.maximum(np.asarray(nc_percent, dtype=np.float64) / 100.0, ALGONAUTS_MIN_CEILING)
    return np.minimum(100.0 * np.maximum(r, 0.0) ** 2 / nc, 100.0)


def ceiling_r(nc_percent: np.ndarray) -> np.ndarray:
    """Noise ceiling in correlation units: the largest expected r, √(NC/100)."""
    return np.sqrt(np.asarray(nc_percent) / 100.0)
