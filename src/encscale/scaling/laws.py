"""Scaling laws of accuracy against size: log-linear and saturating power law, batched.

x is the training-set size N or the parameter count P; y the mean test Pearson r.

- **Log-linear**: y = a + b·log10(x), by least squares.
- **Saturating power law**: y = r∞ − A·x^(−α), with r∞ below the ceiling c (the ROI's
  noise ceiling in r units, or 1 where it is unknown). Written for the gap to the ceiling,
  u = c − y = E + A·x^(−α) with E = c − r∞ > 0, it is fitted as in Hoffmann et al. (2022):
  log u ≈ LSE(log A − α·ln x, log E), with a Huber loss on the log residuals (robust to an
  outlying point), from a grid of starting points, by damped Gauss–Newton steps on the
  iteratively reweighted problem (α ≥ 0). E = exp(·) keeps r∞ strictly below c.

Every function takes a batch: ``y`` of shape (B, n) are B curves over the same n x values
(e.g. bootstrap resamples), fitted at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

HUBER_DELTA = 1e-3  # on log residuals: about a 0.1 % relative error
ALPHA_STARTS = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6)
GAP_STARTS = (0.02, 0.1, 0.3, 0.6, 0.9)  # E as fractions of the smallest observed gap
MIN_GAP = 1e-6  # the least gap to the ceiling, of a point (clipped) and of r∞ (bounded)
LOG_MIN_GAP = float(np.log(MIN_GAP))


@dataclass(frozen=True)
class PowerLaw:
    """Fitted y = r_inf − A·x^(−alpha), per curve of a batch: each field has shape (B,).

    ``gap``: E = ceiling − r_inf (> 0); ``loss``: the Huber loss at the optimum."""

    r_inf: np.ndarray
    A: np.ndarray
    alpha: np.ndarray
    gap: np.ndarray
    loss: np.ndarray

    def predict(self, x: np.ndarray) -> np.ndarray:
        """(B, len(x)) predicted accuracies."""
        x = np.asarray(x, dtype=np.float64)
        return self.r_inf[:, None] - self.A[:, None] * x[None, :] ** -self.alpha[:, None]


def _as_batch(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    y = np.atleast_2d(np.asarray(y, dtype=np.float64))
    if x.ndim != 1 or y.shape[1] != x.size:
        raise ValueError(f"x has shape {x.shape} but y has shape {y.shape}: need (n,) and (B, n)")
    if np.any(x <= 0):
        raise ValueError("x must be positive (sizes or parameter counts)")
    if not np.isfinite(y).all():
        raise ValueError("y holds non-finite accuracies")
    return x, y


def fit_loglinear(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares (a, b) of y = a + b·log10(x), each (B,)."""
    x, y = _as_batch(x, y)
    lx = np.log10(x)
    if np.unique(lx).size < 2:
        raise ValueError("a log-linear fit needs at least two distinct x values")
    lc = lx - lx.mean()
    b = (y - y.mean(axis=1, keepdims=True)) @ lc / (lc @ lc)
    a = y.mean(axis=1) - b * lx.mean()
    return a, b


def predict_loglinear(a: np.ndarray, b: np.ndarray, x: np.ndarray) -> np.ndarray:
    """(B, len(x)) accuracies of the log-linear laws (a, b)."""
    return np.asarray(a)[:, None] + np.asarray(b)[:, None] * np.log10(np.asarray(x))[None, :]


def huber(res: np.ndarray, delta: float) -> np.ndarray:
    """Huber loss of residuals: quadratic within ±delta, linear beyond."""
    r = np.abs(res)
    return np.where(r <= delta, 0.5 * r**2, delta * (r - 0.5 * delta))


def _power_terms(theta: np.ndarray, lnx: np.ndarray, log_u: np.ndarray, delta: float):
    """Log residuals, their Jacobian (B, n, 3) and the Huber loss of θ = (log A, α, log E)."""
    z = theta[:, :1] - theta[:, 1:2] * lnx[None, :]
    f = np.logaddexp(z, theta[:, 2:3])
    share = np.exp(z - f)  # d f / d log A
    jac = np.stack([share, -share * lnx[None, :], 1.0 - share], axis=-1)
    res = f - log_u
    return res, jac, huber(res, delta).sum(axis=1)


def _refine_power(
    theta: np.ndarray, lnx: np.ndarray, log_u: np.ndarray, delta: float, n_iter: int
) -> tuple[np.ndarray, np.ndarray]:
    """Damped Gauss–Newton on the reweighted Huber problem, per row of θ (B, 3)."""
    theta = theta.copy()
    res, jac, loss = _power_terms(theta, lnx, log_u, delta)
    damping = np.full(len(theta), 1e-3)
    eye = np.eye(3)
    for _ in range(n_iter):
        weight = np.where(np.abs(res) <= delta, 1.0, delta / np.maximum(np.abs(res), 1e-300))
        grad = np.einsum("bni,bn->bi", jac, weight * res)
        hess = np.einsum("bni,bn,bnj->bij", jac, weight, jac)
        lhs = hess + damping[:, None, None] * (np.abs(hess) * eye + 1e-9 * eye)
        step = np.linalg.solve(lhs, -grad[..., None])[..., 0]
        trial = theta + step
        trial[:, 1] = np.maximum(trial[:, 1], 0.0)  # α ≥ 0
        trial[:, 2] = np.maximum(trial[:, 2], LOG_MIN_GAP)  # r∞ ≤ c − MIN_GAP
        t_res, t_jac, t_loss = _power_terms(trial, lnx, log_u, delta)
        better = t_loss < loss
        theta[better], res[better], jac[better] = trial[better], t_res[better], t_jac[better]
        moved = better & (np.abs(step).max(axis=1) > 1e-10)
        loss = np.where(better, t_loss, loss)
        damping = np.clip(np.where(better, damping / 3.0, damping * 4.0), 1e-9, 1e9)
        if not moved.any() and np.all(damping >= 1e2):
            break  # every curve rejects even short steps: converged
    return theta, loss


def fit_power_law(
    x: np.ndarray,
    y: np.ndarray,
    ceiling: float | np.ndarray,
    *,
    delta: float = HUBER_DELTA,
    start: PowerLaw | None = None,
    n_iter: int = 200,
) -> PowerLaw:
    """Fit y = r∞ − A·x^(−α) with r∞ < ``ceiling`` to each curve of ``y`` (B, n).

    ``ceiling``: a float or one per curve (B,). Without ``start``, every curve is fitted
    from a grid of starting points (α × E) and keeps its best; with ``start`` (a law of
    batch 1 or B, e.g. the fit of the full data when ``y`` holds bootstrap resamples), from
    that fit only.
    """
    x, y = _as_batch(x, y)
    if np.unique(x).size < 3:
        raise ValueError("a saturating power law needs at least three distinct x values")
    n_curves = len(y)
    c = np.broadcast_to(np.asarray(ceiling, dtype=np.float64), (n_curves,))
    if not np.isfinite(c).all() or np.any(c <= 0):
        raise ValueError("the ceiling must be positive and finite")
    lnx = np.log(x)
    gap = np.maximum(c[:, None] - y, MIN_GAP)
    log_u = np.log(gap)
    if start is not None:
        theta0 = np.stack(
            [np.log(np.maximum(start.A, 1e-300)), start.alpha, np.log(start.gap)], axis=1
        )
        theta0 = np.broadcast_to(theta0, (n_curves, 3))
        theta, loss = _refine_power(theta0, lnx, log_u, delta, n_iter)
    else:
        first = np.argmin(x)
        grid = [(al, fr) for al in ALPHA_STARTS for fr in GAP_STARTS]
        starts = []
        for alpha, frac in grid:
            e = frac * gap.min(axis=1)
            amp = np.maximum(gap[:, first] - e, MIN_GAP) * x[first] ** alpha
            starts.append(np.stack([np.log(amp), np.full(n_curves, alpha), np.log(e)], axis=1))
        theta_all, loss_all = _refine_power(
            np.concatenate(starts), lnx, np.tile(log_u, (len(grid), 1)), delta, n_iter
        )
        best = loss_all.reshape(len(grid), n_curves).argmin(axis=0)
        pick = best * n_curves + np.arange(n_curves)
        theta, loss = theta_all[pick], loss_all[pick]
    gap_fit = np.exp(theta[:, 2])
    return PowerLaw(
        r_inf=c - gap_fit, A=np.exp(theta[:, 0]), alpha=theta[:, 1], gap=gap_fit, loss=loss
    )


def aic(y: np.ndarray, predicted: np.ndarray, n_params: int) -> np.ndarray:
    """Akaike's criterion of Gaussian least-squares fits: n·ln(RSS/n) + 2k, per curve."""
    y, predicted = np.atleast_2d(y), np.atleast_2d(predicted)
    n = y.shape[1]
    rss = np.maximum(((y - predicted) ** 2).sum(axis=1), 1e-300)
    return n * np.log(rss / n) + 2 * n_params


def size_to_reach_loglinear(a: np.ndarray, b: np.ndarray, target: np.ndarray) -> np.ndarray:
    """x where a + b·log10(x) = target; inf where b ≤ 0 and the target is above a."""
    a, b, target = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (a, b, target)))
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        x = np.where(b > 0, 10.0 ** ((target - a) / b), np.inf)
    return x


def size_to_reach_power(law: PowerLaw, target: np.ndarray) -> np.ndarray:
    """x where r∞ − A·x^(−α) = target; inf where the law never reaches it (r∞ ≤ target)."""
    target = np.broadcast_to(np.asarray(target, dtype=np.float64), law.r_inf.shape)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        x = (law.A / (law.r_inf - target)) ** (1.0 / law.alpha)
    return np.where((law.r_inf > target) & (law.alpha > 0), x, np.inf)
