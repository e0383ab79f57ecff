"""The ridge engine: voxelwise ridge regression with penalties chosen by K-fold cross-validation.

For one fold the centred training features factorise as a thin SVD, Xc = U diag(s) Vᵀ, and
the ridge prediction on the validation fold for every penalty α is

    P(α) = (Xv V) diag(s / (s² + α)) Uᵀ Yc,

so every penalty and every target is evaluated with matrix products (no per-penalty solve),
targets going through in batches that bound memory. When the folds partition the samples
(K-fold), one factorisation of all samples serves every fold through the leave-group-out
identity of linear smoothers (:func:`lgo_scores`) and is reused by the refit. The thin
SVD comes from the eigendecomposition of the smaller Gram matrix: XcᵀXc (p × p) when
p < n, the kernel matrix Xc Xcᵀ (n × n) when p ≥ n. Centring X and Y with the training
samples' means makes the intercept unpenalised, as in scikit-learn's ``fit_intercept=True``.

Scores: ``"r"`` is the Pearson correlation on the validation fold, ``"mse"`` the negative mean
squared error; both are averaged over folds (each fold weighs the same) and higher is better.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from encscale.encoding.plan import EVAL_BLOCK_BYTES, KEEP_OPS_BYTES, SMOOTHER_BLOCK_BYTES

log = logging.getLogger(__name__)

SCORINGS = ("r", "mse")
RESCORE_MARGIN = 1e-5  # float32 scores this near the best (r; relative for mse): redone in float64
_BLOCK_MIN, _BLOCK_MAX = 16 * 2**20, EVAL_BLOCK_BYTES  # bounds of one evaluation block, bytes

Fold = tuple[np.ndarray, np.ndarray]


def kfold_splits(n_samples: int, n_folds: int, seed: int | None = None) -> list[Fold]:
    """(train_idx, val_idx) pairs of K-fold cross-validation over ``n_samples`` samples.

    The folds are contiguous blocks of samples (fMRI runs stay together) or, with ``seed``,
    blocks of a seeded permutation. Fold sizes differ by at most one (the first
    ``n_samples % n_folds`` folds are one larger); every sample is validated exactly once.
    Indices are sorted. ``kfold_splits(n, n)`` is leave-one-out.
    """
    if n_folds < 2:
        raise ValueError(f"cross-validation needs at least 2 folds, got n_folds={n_folds}")
    if n_samples < n_folds:
        raise ValueError(f"cannot split {n_samples} samples into {n_folds} folds")
    order = np.arange(n_samples)
    if seed is not None:
        order = np.random.default_rng(seed).permutation(n_samples)
    blocks = np.array_split(order, n_folds)
    return [
        (np.sort(np.concatenate(blocks[:k] + blocks[k + 1 :])), np.sort(val))
        for k, val in enumerate(blocks)
    ]


@dataclass
class RidgeCVResult:
    """Cross-validated ridge fit of one feature set (p features, v targets, a penalties)."""

    alphas: np.ndarray  # (a,) the penalties tried
    cv_scores: np.ndarray  # (a, v) mean validation score over folds
    best_alpha: np.ndarray  # (v,) chosen penalty per target
    coef: np.ndarray  # (p, v) refit on all samples with each target's best alpha
    intercept: np.ndarray  # (v,)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predictions (n, v) for new samples X (n, p)."""
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.coef.shape[0]:
            raise ValueError(
                f"X has shape {X.shape}, expected (n_samples, {self.coef.shape[0]}) features"
            )
        return X @ self.coef + self.intercept


@dataclass
class SelectedRidge:
    """Per target, the best (feature set, penalty) pair by cross-validation, refit on all data."""

    alphas: np.ndarray  # (a,) the penalties tried
    best_set: np.ndarray  # (v,) index of the chosen feature set
    best_alpha: np.ndarray  # (v,) chosen penalty
    cv_score: np.ndarray  # (v,) mean validation score of the chosen (set, penalty)
    set_scores: np.ndarray  # (n_sets, v) best mean validation score each set reached
    coefs: list[np.ndarray]  # coefs[f]: (p_f, number of targets choosing f)
    targets: list[np.ndarray]  # targets[f]: indices of the targets choosing f
    intercept: np.ndarray  # (v,)
    edge_gain: np.ndarray  # (v,) float32: :func:`edge_gain` of the chosen set

    def predict(self, load_X: Callable[[int], np.ndarray]) -> np.ndarray:
        """Predictions (n, v) for new samples; ``load_X(f)`` gives their (n, p_f) features.

        Only the sets chosen by at least one target are loaded, one at a time.
        """
        out = None
        for f, (cols, coef) in enumerate(zip(self.targets, self.coefs, strict=True)):
            if cols.size == 0:
                continue
            X = np.asarray(load_X(f))
            if X.ndim != 2 or X.shape[1] != coef.shape[0]:
                raise ValueError(
                    f"feature set {f} has shape {X.shape}, expected (n_samples, {coef.shape[0]})"
                )
            if out is None:
                out = np.empty((X.shape[0], self.best_set.size), dtype=np.result_type(X, coef))
            elif X.shape[0] != out.shape[0]:
                raise ValueError(
                    f"feature set {f} has {X.shape[0]} samples, earlier sets had {out.shape[0]}"
                )
            out[:, cols] = X @ coef + self.intercept[cols]
        return out


def fit_ridge_cv(
    X: np.ndarray,
    Y: np.ndarray,
    alphas: Sequence[float] | np.ndarray,
    folds: Sequence[Fold],
    *,
    scoring: str = "r",
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    voxel_batch: int | None = None,
) -> RidgeCVResult:
    """Ridge regression of every column of Y on X, each with its own cross-validated penalty.

    X: (n, p) features; Y: (n, v) targets; alphas: (a,) positive penalties; folds: (train_idx,
    val_idx) pairs, e.g. from :func:`kfold_splits`. The best penalty of a target maximises its
    mean validation score, an equal score going to the larger penalty. With float32 work, the
    targets whose two best scores lie within :data:`RESCORE_MARGIN` (1e-5) of each other
    are scored again with float64 work, so that float32 and float64 work choose alike (on
    the plateaus at the ends of a wide grid, scores differ by 1e-9 and less). A target whose
    validation fold is constant scores 0 with ``"r"`` on that fold (as does a constant
    prediction), so a constant column of Y ties over all penalties and gets the largest.
    The refit uses all n samples. ``voxel_batch`` targets are evaluated together (default:
    as many as keep one (a × rows × batch) block under a quarter of Y's size, within
    16–512 MB). ``dtype`` is the precision of the work per target; the factorisations run in
    float64 (see :func:`_factorise`).
    """
    X = _check_matrix(X, "X")
    Y, alphas, folds = _check_problem(Y, alphas, folds, scoring, dtype, X.shape[0])
    scores, reuse = _cv_scores(X, Y, alphas, folds, scoring, device, dtype, voxel_batch)
    best_alpha = alphas[best_alpha_index(scores, alphas)]
    coef, intercept = _refit(X, Y, best_alpha, device, dtype, voxel_batch, **reuse)
    return RidgeCVResult(alphas, scores, best_alpha, coef, intercept)


def fit_ridge_cv_select(
    load_X: Callable[[int], np.ndarray],
    n_sets: int,
    Y: np.ndarray,
    alphas: Sequence[float] | np.ndarray,
    folds: Sequence[Fold],
    *,
    scoring: str = "r",
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    voxel_batch: int | None = None,
) -> SelectedRidge:
    """Choose per target the best of ``n_sets`` feature sets and of the penalties, then refit.

    ``load_X(f)`` returns the (n, p_f) training features of set f; sets are loaded one at a
    time, once for cross-validation and once more for the refit if any target chose them.
    Scores, batching and the constant-target rule are those of :func:`fit_ridge_cv`. The
    set with the highest mean validation score wins (an equal score: the larger chosen
    penalty, then the lower set index), with its penalty chosen as in :func:`fit_ridge_cv`.
    """
    if n_sets < 1:
        raise ValueError(f"n_sets must be at least 1, got {n_sets}")
    Y, alphas, folds = _check_problem(Y, alphas, folds, scoring, dtype, None)
    v = Y.shape[1]
    best_score = np.full(v, -np.inf)
    best_alpha = np.full(v, -np.inf)
    best_set = np.zeros(v, dtype=np.int64)
    best_gain = np.zeros(v, dtype=np.float32)
    set_scores = np.empty((n_sets, v))
    widths = []
    for f in range(n_sets):
        X = _load_set(load_X, f, Y.shape[0])
        widths.append(X.shape[1])
        log.info("feature set %d/%d: %d features, cross-validating", f + 1, n_sets, X.shape[1])
        scores, _ = _cv_scores(X, Y, alphas, folds, scoring, device, dtype, voxel_batch)
        index = best_alpha_index(scores, alphas)
        score, alpha = scores.max(axis=0), alphas[index]
        set_scores[f] = score
        better = is_better(score, alpha, best_score, best_alpha)
        best_score[better], best_alpha[better], best_set[better] = score[better], alpha[better], f
        best_gain[better] = edge_gain(scores, alphas, index)[better]
    targets = [np.flatnonzero(best_set == f) for f in range(n_sets)]
    coefs = []
    intercept = np.empty(v, dtype=_numpy_dtype(dtype))
    for f, cols in enumerate(targets):
        if cols.size == 0:
            coefs.append(np.zeros((widths[f], 0), dtype=_numpy_dtype(dtype)))
            continue
        X = _load_set(load_X, f, Y.shape[0])
        coef, intercept[cols] = _refit(X, Y[:, cols], best_alpha[cols], device, dtype, voxel_batch)
        coefs.append(coef)
    return SelectedRidge(
        alphas, best_set, best_alpha, best_score, set_scores, coefs, targets, intercept, best_gain
    )


# --- input checks ---------------------------------------------------------------------------


def _check_matrix(arr: np.ndarray, name: str) -> np.ndarray:
    """``arr`` as a 2-D floating array with only finite values, else ValueError naming it."""
    arr = np.asarray(arr)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (samples × columns), got shape {arr.shape}")
    if arr.dtype.kind != "f":
        arr = arr.astype(np.float64)
    n_bad = arr.size - np.count_nonzero(np.isfinite(arr))
    if n_bad:
        raise ValueError(f"{name} contains {n_bad} NaN/inf values (of {arr.size})")
    return arr


def _check_problem(
    Y: np.ndarray,
    alphas: Sequence[float] | np.ndarray,
    folds: Sequence[Fold],
    scoring: str,
    dtype: torch.dtype,
    n_samples: int | None,
) -> tuple[np.ndarray, np.ndarray, list[tuple[torch.Tensor, torch.Tensor]]]:
    """Checked Y (n, v), alphas (a,) float64 and folds as index tensors; warns on constant Y.

    ``n_samples`` is the number of rows of X (None: take Y's).
    """
    Y = _check_matrix(Y, "Y")
    n_samples = Y.shape[0] if n_samples is None else n_samples
    if Y.shape[0] != n_samples:
        raise ValueError(f"X has {n_samples} rows (samples) but Y has {Y.shape[0]}")
    if Y.shape[1] == 0:
        raise ValueError("Y has no columns (targets)")
    alphas = np.asarray(alphas, dtype=np.float64)
    if alphas.ndim != 1 or alphas.size == 0:
        raise ValueError(f"alphas must be a non-empty 1-D sequence, got shape {alphas.shape}")
    if not (np.all(np.isfinite(alphas)) and np.all(alphas > 0)):
        raise ValueError(f"alphas must be positive and finite, got {alphas.tolist()}")
    if scoring not in SCORINGS:
        raise ValueError(f"scoring must be one of {SCORINGS}, got {scoring!r}")
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    if len(folds) < 2:
        raise ValueError(f"cross-validation needs at least 2 folds, got {len(folds)}")
    checked = []
    for k, (train, val) in enumerate(folds):
        train, val = np.asarray(train), np.asarray(val)
        for name, idx in (("training", train), ("validation", val)):
            if idx.ndim != 1 or idx.size == 0 or idx.dtype.kind not in "iu":
                raise ValueError(f"fold {k}: {name} indices must be a non-empty 1-D integer array")
            if idx.min() < 0 or idx.max() >= n_samples:
                raise ValueError(f"fold {k}: {name} indices outside 0..{n_samples - 1}")
        if scoring == "r" and val.size < 2:
            raise ValueError(
                f'fold {k} validates {val.size} sample; scoring="r" needs at least 2 per fold '
                '(use scoring="mse" for leave-one-out)'
            )
        checked.append((torch.as_tensor(train), torch.as_tensor(val)))
    n_const = int(np.count_nonzero(np.ptp(Y, axis=0) == 0))
    if n_const:
        warnings.warn(
            f"{n_const} of {Y.shape[1]} columns of Y are constant: they tie over all penalties "
            "and get the largest one (score 0 with 'r')",
            stacklevel=3,
        )
    return Y, alphas, checked


def _load_set(load_X: Callable[[int], np.ndarray], f: int, n_samples: int) -> np.ndarray:
    X = _check_matrix(load_X(f), f"X of feature set {f}")
    if X.shape[0] != n_samples:
        raise ValueError(f"feature set {f} has {X.shape[0]} rows (samples) but Y has {n_samples}")
    return X


# --- computation ----------------------------------------------------------------------------


def _numpy_dtype(dtype: torch.dtype) -> np.dtype:
    return np.dtype(np.float32 if dtype == torch.float32 else np.float64)


def _batch_size(
    voxel_batch: int | None, n_alphas: int, rows: int, dtype: torch.dtype, y_bytes: int
) -> int:
    """Targets per batch: ``voxel_batch``, or as many as keep one (a × rows × batch) block
    under a quarter of Y's size, clamped to [16 MB, min(512 MB, available memory / 8)], so the
    evaluation's working memory grows with the data, not beyond it.
    """
    if voxel_batch is not None:
        if voxel_batch < 1:
            raise ValueError(f"voxel_batch must be at least 1, got {voxel_batch}")
        return voxel_batch
    ceiling = max(_BLOCK_MIN, min(_BLOCK_MAX, available_memory() // 8))
    block = min(max(y_bytes // 4, _BLOCK_MIN), ceiling)
    itemsize = torch.empty((), dtype=dtype).element_size()
    return max(1, block // (itemsize * n_alphas * max(rows, 1)))


def available_memory() -> int:
    """Bytes of memory available to this process (Linux), or 4 GiB where unknown."""
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 4 * 2**30


def _thin_svd(
    xc: torch.Tensor, kernel: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Thin SVD Xc = U diag(s) Vᵀ of a centred float64 (n, p) matrix via its smaller Gram matrix.

    p < n: eigendecomposition of XcᵀXc (p × p) gives V and s², then U = Xc V / s.
    p ≥ n: eigendecomposition of Xc Xcᵀ (n × n, kernel form) gives U and s², then V = Xcᵀ U / s.
    Directions with s² under the numerical-rank tolerance are dropped: in exact arithmetic
    they add nothing to a ridge solution. Returns U (n, r), s (r,), V (p, r). ``kernel``:
    Xc Xcᵀ when the caller has it already (used for p ≥ n).
    """
    n, p = xc.shape
    primal = p < n
    if primal:
        gram = xc.T @ xc
    else:
        gram = xc @ xc.T if kernel is None else kernel
    lam, vecs = torch.linalg.eigh(gram)
    del gram
    tol = lam[-1].clamp(min=0) * max(n, p) * torch.finfo(lam.dtype).eps
    keep = lam > tol
    s = lam[keep].sqrt()
    if primal:
        v = vecs[:, keep]
        return (xc @ v).div_(s), s, v
    u = vecs[:, keep]
    return u, s, (xc.T @ u).div_(s)


def _factorise(
    x: torch.Tensor, rows: torch.Tensor, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Thin SVD of ``x[rows]`` centred with its own column means: U, s (in ``dtype``), V, means.

    See :func:`factorise_features`; U and s are cast to ``dtype`` here, V (p, r) and the column
    means (p,) stay float64 for the caller's last product.
    """
    u, s, v, mean = factorise_features(x[rows])
    return u.to(dtype), s.to(dtype), v, mean


def _centre_targets(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Column means (b,) and centred y (n, b); constant columns are exactly 0 once centred."""
    mean = y.mean(0)
    constant = (y == y[0]).all(0)
    return mean, torch.where(constant, 0.0, y - mean)


def _fold_scores(
    u: torch.Tensor,
    s: torch.Tensor,
    a: torch.Tensor,
    y_train: torch.Tensor,
    y_val: torch.Tensor,
    alphas: torch.Tensor,
    scoring: str,
) -> torch.Tensor:
    """Validation score (a, b) of every penalty for a batch of b targets on one fold.

    u (n_t, r), s (r,): thin SVD of the centred training features; a (n_v, r): validation
    features (centred with the training means) times V, and further centred over the
    validation samples for ``"r"``; y_train (n_t, b), y_val (n_v, b).
    """
    mean, yc = _centre_targets(y_train)
    proj = u.T @ yc  # (r, b)
    shrink = s / (s**2 + alphas[:, None])  # (a, r)
    pred = a @ (shrink[:, :, None] * proj)  # (a, n_v, b): validation prediction − training mean
    if scoring == "mse":
        return -((pred - (y_val - mean)) ** 2).mean(1)
    yv = y_val - y_val.mean(0)
    num = (pred * yv).sum(1)
    den = torch.sqrt((pred**2).sum(1) * (yv**2).sum(0))
    r = num / torch.where(den > 0, den, 1.0)
    return torch.where((y_val == y_val[0]).all(0), 0.0, r)  # constant validation data: r = 0


def _cv_scores(
    X: np.ndarray,
    Y: np.ndarray,
    alphas: np.ndarray,
    folds: list[tuple[torch.Tensor, torch.Tensor]],
    scoring: str,
    device: str | torch.device,
    dtype: torch.dtype,
    voxel_batch: int | None,
) -> tuple[np.ndarray, dict[str, object]]:
    """Mean validation score over folds (a, v), float64, and what the refit can reuse.

    Where the folds partition the samples (K-fold), the scores come from one factorisation
    of all samples (:func:`lgo_scores`), which the refit reuses; elsewhere from one
    factorisation per fold (the refit reuses the kernel X Xᵀ when p ≥ n).
    """
    device = torch.device(device)
    x = torch.as_tensor(X, device=device)
    if _folds_partition(X.shape[0], folds):
        u64, s, v, mean = factorise_features(x)
        scores, proj = lgo_scores(Y, alphas, folds, scoring, dtype, voxel_batch, u64, s)
        factors = (None, s, v.to(dtype), mean)  # the refit needs only V, s, the means and proj
        return scores, {"factors": factors, "proj": proj}
    gram = None
    if X.shape[1] >= max(train.numel() for train, _ in folds):  # kernel regime: X Xᵀ once
        x64 = x.to(torch.float64)
        gram = x64 @ x64.T
        del x64
    scores = _rescore_ambiguous(
        lambda y, dt, idx: _fold_factor_scores(
            x, y, alphas[idx], folds, scoring, dt, voxel_batch, gram
        ),
        _fold_factor_scores(x, Y, alphas, folds, scoring, dtype, voxel_batch, gram),
        Y,
        scoring,
        dtype,
        voxel_batch,
    )
    return scores, {"gram": gram}


def _fold_factor_scores(
    x: torch.Tensor,
    Y: np.ndarray,
    alphas: np.ndarray,
    folds: list[tuple[torch.Tensor, torch.Tensor]],
    scoring: str,
    dtype: torch.dtype,
    voxel_batch: int | None,
    gram: torch.Tensor | None,
) -> np.ndarray:
    """Mean validation score over folds (a, v) from one factorisation per fold, the work per
    target in ``dtype`` (``gram``: X Xᵀ in the kernel regime)."""
    device = x.device
    y = torch.as_tensor(Y, dtype=dtype)
    alphas_t = torch.as_tensor(alphas, dtype=dtype, device=device)
    n_val = max(val.numel() for _, val in folds)
    n_train = max(train.numel() for train, _ in folds)
    rows = max(n_val, min(x.shape[1], n_train))
    batch = _batch_size(voxel_batch, alphas.size, rows, dtype, y.element_size() * y.numel())
    total = torch.zeros((alphas.size, Y.shape[1]), dtype=torch.float64, device=device)
    for (train, val), (u, s, a) in zip(folds, _fold_factors(x, folds, dtype, gram), strict=True):
        train, val = train.to(device), val.to(device)
        if scoring == "r":
            a = a - a.mean(0)
        a = a.to(dtype)
        for start in range(0, Y.shape[1], batch):
            yb = y[:, start : start + batch].to(device)
            scores = _fold_scores(u, s, a, yb[train], yb[val], alphas_t, scoring)
            total[:, start : start + batch] += scores.to(torch.float64)
    return (total / len(folds)).cpu().numpy()


def _folds_partition(n: int, folds: list[tuple[torch.Tensor, torch.Tensor]]) -> bool:
    """Whether every sample is validated exactly once and trains in every other fold."""
    seen = torch.zeros(n, dtype=torch.int64)
    for train, val in folds:
        if train.numel() + val.numel() != n:
            return False
        seen[val] += 1
    return bool((seen == 1).all()) and all(
        not bool(torch.isin(train, val).any()) for train, val in folds
    )


def lgo_scores(
    Y: np.ndarray,
    alphas: np.ndarray,
    folds: list[tuple[torch.Tensor, torch.Tensor]],
    scoring: str,
    dtype: torch.dtype,
    voxel_batch: int | None,
    u64: torch.Tensor,
    s: torch.Tensor,
) -> tuple[np.ndarray, torch.Tensor]:
    """Mean validation score over folds (a, v) from ONE factorisation of all n samples, and
    UᵀY (r, v) in ``dtype``.

    Ridge with an unpenalised intercept is a linear smoother, Ŷ = H Y with
    H = J/n + U diag(f) Uᵀ (Xc = U diag(s) Vᵀ centred with all samples' means,
    f = s²/(s²+α), J all ones). Refitting without the rows of fold v predicts them, exactly,
    as (I − H_vv)⁻¹ H_vt Y_t: for all penalties at once, one matrix product per fold and
    target batch with operators formed once per fold and penalty (centred over the
    validation rows for ``"r"``, which sees only the prediction's variation); nothing is
    solved per target. u64 (n, r) float64 and s (r,), ascending, come from
    :func:`factorise_features` or :func:`factorise_kernel`. Two forms:

    - n − r ≥ 2·n_v (I − H_vv well conditioned): with Yc centred on all samples,
      H_vt Yc_t = U_v diag(f) Pt − 1·(Σ_v Yc)/n where Pt = UᵀYc − U_vᵀYc_v, so the
      prediction is B [Pt; −(Σ_v Yc)/n] with B = (I − H_vv)⁻¹ [U_v diag(f), 1]
      (n_v × (r+1), :func:`_lgo_operators`).
    - otherwise: the prediction is S Yc_t with S = −R_vv⁻¹ R_vt (n_v × n_t), R = I − H
      (:func:`_lgo_smoothers`): I − H_vv may be nearly singular here (p ≥ n and small
      penalties), and S is not.

    Either way the prediction comes without subtracting large numbers (forming
    Y_v − (I − H_vv)⁻¹E_v instead loses float32 precision where the prediction is nearly
    constant). The operators are formed in float64 and applied in ``dtype``. Targets whose
    two best scores come within :data:`RESCORE_MARGIN` of each other (:func:`_ambiguous`)
    are scored again with the float64 operators, kept from the first pass where every
    fold's fit in :data:`~encscale.encoding.plan.KEEP_OPS_BYTES`, else formed again.
    """
    n, rank = u64.shape
    n_val = max(val.numel() for _, val in folds)
    well_conditioned = n - rank >= 2 * n_val
    width = rank + 1 if well_conditioned else n - n_val
    keep = dtype != torch.float64 and 8 * alphas.size * n * width <= KEEP_OPS_BYTES
    kept: dict[int, torch.Tensor] = {}

    def fold_ops(i: int) -> torch.Tensor:
        """Fold i's operators, float64: built, or kept from the first pass."""
        if i in kept:
            return kept[i]
        train, val = (idx.to(u64.device) for idx in folds[i])
        if well_conditioned:
            ops = _lgo_operators(u64[val], s, n, alphas, scoring)
        else:
            ops = _lgo_smoothers(u64, s, train, val, alphas, scoring)
        if keep:
            kept[i] = ops
        return ops

    all_penalties = np.arange(alphas.size)
    scores, proj = _lgo_pass(Y, folds, scoring, dtype, voxel_batch, u64, fold_ops, all_penalties)
    scores = _rescore_ambiguous(
        lambda y, dt, idx: _lgo_pass(y, folds, scoring, dt, voxel_batch, u64, fold_ops, idx)[0],
        scores,
        Y,
        scoring,
        dtype,
        voxel_batch,
    )
    return scores, proj


def _lgo_pass(
    Y: np.ndarray,
    folds: list[tuple[torch.Tensor, torch.Tensor]],
    scoring: str,
    dtype: torch.dtype,
    voxel_batch: int | None,
    u64: torch.Tensor,
    fold_ops: Callable[[int], torch.Tensor],
    penalties: np.ndarray,
) -> tuple[np.ndarray, torch.Tensor]:
    """:func:`lgo_scores` of the ``penalties`` (indices into the operators' penalty blocks),
    scores (len(penalties), v), with all the work per target in ``dtype``; ``fold_ops(i)``:
    fold i's float64 operators."""
    device = u64.device
    n, rank = u64.shape
    y = torch.as_tensor(Y, dtype=dtype)
    n_val = max(val.numel() for _, val in folds)
    well_conditioned = n - rank >= 2 * n_val
    batch = _batch_size(voxel_batch, penalties.size, n_val, dtype, y.element_size() * y.numel())
    u = u64.to(dtype)
    proj = torch.empty((rank, Y.shape[1]), dtype=dtype, device=device)
    for start in range(0, Y.shape[1], batch):  # UᵀYc = UᵀY: the columns of U sum to 0
        proj[:, start : start + batch] = u.T @ y[:, start : start + batch].to(device)
    mean_y = y.mean(0).to(device)
    total = torch.zeros((penalties.size, Y.shape[1]), dtype=torch.float64, device=device)
    for i, (train, val) in enumerate(folds):
        train, val = train.to(device), val.to(device)
        ops = fold_ops(i)
        n_ops = ops.shape[0] // val.numel()
        if penalties.size < n_ops:
            ops = ops.view(n_ops, val.numel(), -1)[torch.as_tensor(penalties, device=device)]
        ops = ops.reshape(-1, ops.shape[-1]).to(dtype)
        for start in range(0, Y.shape[1], batch):
            cols = slice(start, start + batch)
            y_v = y[val.cpu(), cols].to(device)
            yc_v = y_v - mean_y[cols]
            if well_conditioned:
                proj_t = proj[:, cols] - u[val].T @ yc_v
                rhs = torch.cat((proj_t, -yc_v.sum(0, keepdim=True) / n))
            else:
                rhs = y[train.cpu(), cols].to(device) - mean_y[cols]
            pred = (ops @ rhs).view(penalties.size, val.numel(), -1)
            total[:, cols] += _validation_scores(pred, y_v, yc_v, scoring).to(torch.float64)
        del ops  # before the next fold's are built
    return (total / len(folds)).cpu().numpy(), proj


def _lgo_operators(
    uv: torch.Tensor, s: torch.Tensor, n: int, alphas: np.ndarray, scoring: str
) -> torch.Tensor:
    """Stacked leave-group-out operators (a·n_v, r+1), float64, for one validation fold.

    uv (n_v, r): the fold's rows of U, float64; s (r,): singular values; n: all samples.
    Row block i is (I − H_vv(α_i))⁻¹ [U_v diag(f_i), 1], centred over its rows for ``"r"``.
    I − H_vv = Z_v + U_v diag(α/(s²+α)) U_vᵀ with Z_v = I − J/n − U_vU_vᵀ, so no weight is
    formed as 1 − f (which cancels where s² ≫ α). Penalties go in blocks of
    :data:`SMOOTHER_BLOCK_BYTES`: one matrix product forms the block's I − H_vv, then its
    inverse (:func:`_spd_inverse`).
    """
    n_v, rank = uv.shape
    z_vv = torch.eye(n_v, dtype=uv.dtype, device=uv.device) - 1.0 / n - uv @ uv.T
    ops = torch.empty((alphas.size, n_v, rank + 1), dtype=uv.dtype, device=uv.device)
    step = max(1, SMOOTHER_BLOCK_BYTES // (8 * n_v * (n_v + rank)))
    s2 = s**2
    for a0 in range(0, alphas.size, step):
        block = torch.as_tensor(alphas[a0 : a0 + step], dtype=uv.dtype, device=uv.device)
        f = s2 / (s2 + block[:, None])  # (b, r)
        g = block[:, None] / (s2 + block[:, None])  # 1 − f, formed without cancelling
        mat = torch.matmul(uv * g[:, None, :], uv.T).add_(z_vv)
        m = _spd_inverse(mat)
        if scoring == "r":  # centring the rows of m centres the rows of m [U_v diag(f), 1]
            m -= m.mean(1, keepdim=True)
        ops[a0 : a0 + step, :, :-1] = torch.matmul(m, uv * f[:, None, :])
        ops[a0 : a0 + step, :, -1] = m.sum(2)  # (I − H_vv)⁻¹ 1
    if scoring == "r":
        _unit_scale(ops)
    return ops.view(alphas.size * n_v, -1)


def _spd_inverse(mat: torch.Tensor) -> torch.Tensor:
    """Inverses (..., m, m) of symmetric positive definite matrices, L⁻ᵀL⁻¹ from their
    Cholesky factors L. Multiplying by it runs at matrix-product speed, 2–3× faster on the
    CPU than triangular solves with many right-hand sides (``cholesky_solve``), and as
    accurate for the leave-group-out smoothers."""
    chol = torch.linalg.cholesky(mat)
    eye = torch.eye(mat.shape[-1], dtype=mat.dtype, device=mat.device).expand_as(chol)
    inv_l = torch.linalg.solve_triangular(chol, eye, upper=False)
    return inv_l.mT @ inv_l


def _unit_scale(ops: torch.Tensor) -> None:
    """Scale each penalty's block of ``ops`` (a, rows, cols) to a largest |entry| of 1, in place.

    Pearson r does not see a prediction's scale, and under large penalties the centred
    operators are tiny (their size falls like s²/α): at unit scale their float32 products
    neither underflow nor lose what is left of the prediction's variation.
    """
    peak = ops.abs().amax(dim=(1, 2), keepdim=True)
    ops /= torch.where(peak > 0, peak, 1.0)


def _lgo_smoothers(
    u: torch.Tensor,
    s: torch.Tensor,
    train: torch.Tensor,
    val: torch.Tensor,
    alphas: np.ndarray,
    scoring: str,
) -> torch.Tensor:
    """Stacked leave-group-out smoothers (a·n_v, n_t), float64, for one validation fold.

    u (n, r) float64, s (r,): thin SVD of the centred features. With R = I − H
    = Z + U diag(α/(s²+α)) Uᵀ, Z = I − J/n − UUᵀ (no cancellation as α → 0), block i is
    S = −R_vv⁻¹ R_vt for α_i, all in float64 (R_vv is positive definite: R's null space is
    the constants), centred over its rows for ``"r"``. S Yc_t predicts the fold's Yc_v.
    Penalties go in blocks of :data:`SMOOTHER_BLOCK_BYTES`: one matrix product forms R's
    rows for the whole block, one batched product with R_vv⁻¹ its smoothers.
    """
    n, n_v, n_t = u.shape[0], val.numel(), train.numel()
    uv, ut = u[val], u[train]
    z_vv = torch.eye(n_v, dtype=u.dtype, device=u.device) - 1.0 / n - uv @ uv.T
    z_vt = (uv @ ut.T).neg_().sub_(1.0 / n)
    ops = torch.empty((alphas.size, n_v, n_t), dtype=u.dtype, device=u.device)
    step = max(1, SMOOTHER_BLOCK_BYTES // (8 * n_v * n))
    s2 = s**2
    for a0 in range(0, alphas.size, step):
        block = torch.as_tensor(alphas[a0 : a0 + step], dtype=u.dtype, device=u.device)
        w = (uv * (block[:, None] / (s2 + block[:, None]))[:, None, :]).reshape(-1, uv.shape[1])
        r_vv = (w @ uv.T).view(-1, n_v, n_v).add_(z_vv)
        r_vt = (w @ ut.T).view(-1, n_v, n_t).add_(z_vt)
        smoother = torch.matmul(_spd_inverse(r_vv), r_vt).neg_()
        if scoring == "r":  # in float64: under large penalties the variation is tiny
            smoother -= smoother.mean(1, keepdim=True)
        ops[a0 : a0 + step] = smoother
    if scoring == "r":
        _unit_scale(ops)
    return ops.view(alphas.size * n_v, -1)


def _validation_scores(
    pred: torch.Tensor, y_val: torch.Tensor, yc_val: torch.Tensor, scoring: str
) -> torch.Tensor:
    """Scores (a, b) of validation predictions (a, n_v, b) of y_val (n_v, b).

    ``"r"``: Pearson r of predictions already centred over the validation rows, 0 where the
    prediction or y_val is constant. ``"mse"``: −mean((yc_val − pred)²), where the
    predictions are of yc_val, y_val centred with a constant that applies to both.
    """
    if scoring == "mse":
        return -((yc_val - pred) ** 2).mean(1)
    yv = y_val - y_val.mean(0)
    den = torch.sqrt(torch.linalg.vecdot(pred, pred, dim=1) * (yv**2).sum(0))
    r = torch.linalg.vecdot(pred, yv, dim=1) / torch.where(den > 0, den, 1.0)
    return torch.where((y_val == y_val[0]).all(0), 0.0, r)


def factorise_features(
    x: torch.Tensor, gram: torch.Tensor | None = None
) -> tuple[torch.Tensor, ...]:
    """Float64 thin SVD of the rows of ``x`` centred: U (n, r), s (r,), V (p, r), means (p,).

    float64 here: the Gram matrix, its eigendecomposition and the singular vectors (a float32
    Gram loses the small singular values of decaying spectra). This costs O(n·p·min(n, p)),
    independent of the number of targets. ``gram``: the uncentred X Xᵀ (n, n) if computed
    already; it is centred in place.
    """
    x64 = x.to(torch.float64, copy=True)  # centred in place below
    mean = x64.mean(0)
    kernel = None
    if gram is not None and x.shape[1] >= x.shape[0]:
        col_mean = gram.mean(0)
        kernel = gram.sub_(col_mean[:, None]).sub_(col_mean[None, :]).add_(col_mean.mean())
    u, s, v = _thin_svd(x64.sub_(mean), kernel)
    return u, s, v, mean


def _fold_factors(
    x: torch.Tensor,
    folds: list[tuple[torch.Tensor, torch.Tensor]],
    dtype: torch.dtype,
    gram: torch.Tensor | None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Per fold: U (n_t, r) and s (r,) of the centred training features, in ``dtype``, and the
    validation features centred with the training means and projected on V, A = Xv_c V
    (n_v, r), in float64.

    Primal regime (``gram`` None, p < n_t): the thin SVD of each fold's centred X_t
    (:func:`_factorise`). Kernel regime (p ≥ n_t): each fold centres its slices of the Gram
    matrix ``gram`` = X Xᵀ (n × n, float64), Kc_tt = Xt_c Xt_cᵀ and Kc_vt = Xv_c Xt_cᵀ, so
    that A = Kc_vt U / s needs no product with X at all.
    """
    if gram is None:
        for train, val in folds:
            train, val = train.to(x.device), val.to(x.device)
            u, s, v, mean = _factorise(x, train, dtype)
            yield u, s, (x[val].to(torch.float64) - mean) @ v
        return
    for train, val in folds:
        train, val = train.to(x.device), val.to(x.device)
        u, s, col_mean = factorise_kernel(gram[train][:, train])
        a = kernel_projection(gram[val][:, train], col_mean, u, s)
        yield u.to(dtype), s.to(dtype), a


def _kernel_eig(kc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """U (n, r), s (r,) of a centred float64 kernel Xc Xcᵀ; numerically null directions dropped."""
    lam, vecs = torch.linalg.eigh(kc)
    keep = lam > lam[-1].clamp(min=0) * kc.shape[0] * torch.finfo(lam.dtype).eps
    return vecs[:, keep], lam[keep].sqrt()


def _ambiguous(scores: np.ndarray, scoring: str) -> np.ndarray:
    """Mask (v,) of the targets of scores (a, v) whose second-best penalty scores within
    :data:`RESCORE_MARGIN` of the best (relative to it for mse): float32 rounding, up to
    about 1e-7 in r, could order them either way."""
    if scores.shape[0] < 2:
        return np.zeros(scores.shape[1], dtype=bool)
    top = np.sort(scores, axis=0)[-2:]
    return top[1] - top[0] <= _margin(top[1], scoring)


def _margin(best: np.ndarray, scoring: str) -> np.ndarray | float:
    """:data:`RESCORE_MARGIN` for targets whose best score is ``best``: absolute for r,
    relative for mse."""
    return RESCORE_MARGIN * (1.0 if scoring == "r" else np.abs(best))


def _rescore_ambiguous(
    score: Callable[[np.ndarray, torch.dtype, np.ndarray], np.ndarray],
    scores: np.ndarray,
    Y: np.ndarray,
    scoring: str,
    dtype: torch.dtype,
    voxel_batch: int | None,
) -> np.ndarray:
    """``scores`` (a, v) with the :func:`_ambiguous` targets' scores of the penalties near
    their best replaced by ``score(Y[:, cols], torch.float64, penalties)`` (len(penalties),
    cols), where ``dtype`` is not float64 already. Near: within :data:`RESCORE_MARGIN` of
    some such target's best; a penalty further below its best cannot overtake it through
    float32 rounding. With ``voxel_batch``, targets go ``voxel_batch // 2`` at a time, so
    that their float64 work takes no more memory than a float32 batch."""
    if dtype == torch.float64:
        return scores
    cols = np.flatnonzero(_ambiguous(scores, scoring))
    log.debug("%d of %d targets scored again in float64", cols.size, Y.shape[1])
    step = max(1, cols.size if voxel_batch is None else voxel_batch // 2)
    for start in range(0, cols.size, step):
        part = cols[start : start + step]
        top = scores[:, part].max(0)
        penalties = np.flatnonzero((scores[:, part] >= top - _margin(top, scoring)).any(1))
        scores[np.ix_(penalties, part)] = score(Y[:, part], torch.float64, penalties)
    return scores


def factorise_kernel(gram: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """U (n, r) and s (r,), ascending, of the centred features from their uncentred float64
    kernel X Xᵀ (n, n), and the kernel's column means (n,) (for :func:`kernel_projection`);
    ``gram`` is left as it was."""
    col_mean = gram.mean(0)
    kc = gram - col_mean[:, None] - col_mean[None, :] + col_mean.mean()
    u, s = _kernel_eig(kc)
    return u, s, col_mean


def kernel_projection(
    cross: torch.Tensor, col_mean: torch.Tensor, u: torch.Tensor, s: torch.Tensor
) -> torch.Tensor:
    """New samples' features centred with the training means and projected on V, A = Xe_c V
    (m, r), from their uncentred cross kernel Xe Xᵀ (m, n) with the training samples,
    float64, and the training kernel's column means and U, s (:func:`factorise_kernel`)."""
    centred = cross - cross.mean(1, keepdim=True) - col_mean[None, :] + col_mean.mean()
    return (centred @ u) / s


def best_alpha_index(scores: np.ndarray, alphas: np.ndarray) -> np.ndarray:
    """Index (v,) of the best penalty per target in scores (a, v): the highest score, an
    equal score going to the larger penalty."""
    order = np.argsort(-alphas, kind="stable")
    return order[np.argmax(scores[order], axis=0)]


def edge_gain(scores: np.ndarray, alphas: np.ndarray, index: np.ndarray) -> np.ndarray:
    """(v,) float32: for a target whose best penalty (``index`` into alphas, scores (a, v)) is
    the grid's smallest or largest, how much its mean validation score beats the next
    penalty inward; 0 for the others, and with one penalty. On the plateaus at either end of
    the grid (least squares; the kernel direction of an infinite penalty with ``"r"``) this
    is about 0; where the score still climbs at the edge, the grid may cut off its best."""
    gain = np.zeros(scores.shape[1], dtype=np.float32)
    grid = np.unique(alphas)  # sorted; a repeated penalty is not its own neighbour
    if grid.size < 2:
        return gain
    first = {a: int(np.flatnonzero(alphas == a)[0]) for a in grid[[0, 1, -2, -1]]}
    for edge, inner in ((grid[0], grid[1]), (grid[-1], grid[-2])):
        at = alphas[index] == edge
        gain[at] = scores[first[edge], at] - scores[first[inner], at]
    return gain


def is_better(
    score: np.ndarray, alpha: np.ndarray, best_score: np.ndarray, best_alpha: np.ndarray
) -> np.ndarray:
    """Mask (v,) of the targets where a later set's best score (and its chosen penalty) beats
    the best so far: a higher score wins, then an equal score with a larger penalty;
    otherwise the earlier (lower-index) set stays."""
    return (score > best_score) | ((score == best_score) & (alpha > best_alpha))


def _refit(
    X: np.ndarray,
    Y: np.ndarray,
    alpha: np.ndarray,
    device: str | torch.device,
    dtype: torch.dtype,
    voxel_batch: int | None,
    factors: tuple[torch.Tensor, ...] | None = None,
    gram: torch.Tensor | None = None,
    proj: torch.Tensor | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Ridge fit on all samples with one penalty per target: coef (p, v), intercept (v,).

    One factorisation of the centred X (``factors`` from :func:`factorise_features` when the
    cross-validation already made it, else made here, from ``gram`` = X Xᵀ if given); per
    target the shrinkage s / (s² + α_j) applies to its column of Uᵀ Yc (``proj`` (r, v) if
    the cross-validation computed it), so the coefficients V diag(...) Uᵀ Yc come from
    matrix products.
    """
    device = torch.device(device)
    x = torch.as_tensor(X, device=device)
    y = torch.as_tensor(Y, dtype=dtype)
    if factors is None:
        factors = factorise_features(x, gram)
    u, s, v = (None if t is None else t.to(dtype) for t in factors[:3])
    mean_x = factors[3]
    alpha_t = torch.as_tensor(alpha, dtype=dtype, device=device)
    batch = _batch_size(voxel_batch, 1, max(X.shape), dtype, y.element_size() * y.numel())
    coef = np.empty((X.shape[1], Y.shape[1]), dtype=_numpy_dtype(dtype))
    intercept = np.empty(Y.shape[1], dtype=_numpy_dtype(dtype))
    for start in range(0, Y.shape[1], batch):
        cols = slice(start, start + batch)
        yb = y[:, cols].to(device)
        mean_y = yb.mean(0)
        if proj is None:
            proj_b = u.T @ _centre_targets(yb)[1]
        else:  # UᵀYc = UᵀY; a constant column projects to exactly 0
            proj_b = torch.where((yb == yb[0]).all(0), 0.0, proj[:, cols])
        shrink = s[:, None] / (s[:, None] ** 2 + alpha_t[cols])  # (r, b)
        w = v @ (shrink * proj_b)  # (p, b)
        coef[:, cols] = w.cpu().numpy()
        intercept[cols] = (mean_y.double() - mean_x @ w.double()).cpu().numpy()
    return coef, intercept
