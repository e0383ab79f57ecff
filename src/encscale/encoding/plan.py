"""What a subject × model fit job costs, from shapes alone: each feature set's route (kernel
or primal), the job's peak memory, and its floating-point work.

The rates are this project's measurements (``PERF_FACTS``: 2 cores of an AVX-512 CPU):
float32 matrix products at about 4e11 FLOP/s, float64 at half that, symmetric
eigendecompositions at about 6e10 FLOP/s. Only their ratios choose a route; the absolute
values turn FLOPs into an estimate of time for :mod:`encscale.encoding.cost`, where a
device's own rates replace them.
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from encscale.contracts import layer_groups, open_features, pool_grid, response_shapes

GEMM64_RATE = 2e11  # FLOP/s, float64 matrix products
GEMM32_RATE = 4e11  # FLOP/s, float32 matrix products
EIGH_RATE = 6e10  # FLOP/s, float64 symmetric eigendecomposition with vectors
EIGH_FLOPS = 9.0  # × n³ for an n × n eigendecomposition with vectors
BASE_BYTES = (
    300 * 2**20
)  # the interpreter with numpy, torch (its linear algebra loaded), h5py: measured RSS
CHUNK_BYTES = 256 * 2**20  # one read of a map's channels for every row, float32
POOL_INDEX_BYTES = 16 * 2**20  # torch's pooling indices for one block of images (int64)
KEEP_OPS_BYTES = 512 * 2**20  # every fold's float64 operators, kept for rescoring if they fit
SMOOTHER_BLOCK_BYTES = 64 * 2**20  # float64 rows of R, and smoothers, for a block of penalties
EVAL_BLOCK_BYTES = 512 * 2**20  # the engine's largest block of targets × penalties scored
KERNEL_BLOCK = 1024  # columns of a pooled chunk copied to float64 at a time for the kernel
ROUTES = ("kernel", "primal")


@dataclass(frozen=True)
class FitShapes:
    """The shapes a subject × model fit job meets.

    rows: the distinct stimuli it reads (training draws, test, challenge); n_train: the
    training pool (samples with responses); n_eval: test + challenge samples; voxels;
    draws: every (size) of every draw; widths: each feature set's columns; map_values: the
    largest layer map's values per stimulus (C·h·w; 0 without maps); ks_per_layer: the
    most pooled sets one layer gives.
    """

    rows: int
    n_train: int
    n_eval: int
    voxels: int
    draws: Sequence[int]
    widths: Sequence[int]
    n_alphas: int
    n_folds: int
    map_values: int = 0
    ks_per_layer: int = 1
    routes: Sequence[str] = field(default=())

    def route_of(self, f: int) -> str:
        return (
            self.routes[f]
            if self.routes
            else choose_route(self.widths[f], self.rows, self.draws, self.n_eval)
        )


@dataclass(frozen=True)
class Rates:
    """A device's rates: FLOP/s of each kind of work, storage bytes/s, and its memory
    (bytes; inf: not bounded here)."""

    gemm64: float
    gemm32: float
    eigh: float
    forward_half: float
    forward_fp32: float
    storage: float
    memory: float


RATES = {
    "cpu": Rates(GEMM64_RATE, GEMM32_RATE, EIGH_RATE, 2e11, 2e11, 1e9, math.inf),
    "h100": Rates(50e12, 50e12, 1.0e12, 400e12, 25e12, 2e9, 79 * 2**30),
    "h200": Rates(60e12, 60e12, 1.2e12, 400e12, 25e12, 2e9, 139 * 2**30),
}

RATES_SOURCE = {
    "cpu": "this project's CPU measurements (plan); forward and storage assumed",
    "h100": "assumed, not measured here",
    "h200": "assumed, not measured here",
}


@dataclass
class Work:
    """Floating-point work by kind (FLOP)."""

    gemm64: float = 0.0
    gemm32: float = 0.0
    eigh: float = 0.0

    @property
    def total(self) -> float:
        return self.gemm64 + self.gemm32 + self.eigh

    def seconds(self, rates: Rates) -> float:
        return self.gemm64 / rates.gemm64 + self.gemm32 / rates.gemm32 + self.eigh / rates.eigh

    def add(self, other: Work, times: float = 1.0) -> None:
        self.gemm64 += times * other.gemm64
        self.gemm32 += times * other.gemm32
        self.eigh += times * other.eigh


def lgo_flops(n: int, r: int, n_folds: int, n_alphas: int, voxels: int) -> Work:
    """Work of :func:`encscale.encoding.ridge.lgo_scores` on n samples of rank r.

    UᵀY once; per fold, with n_v validation and n_t training rows, and per penalty either
    the well-conditioned operators (n − r ≥ 2·n_v: ≈ 2·n_v²·r·2 + n_v³, and 2·n_v²·r per
    fold, float64) and the score products 2·a·n_v·(r + 1)·V, or the smoothers
    (≈ 2·n_v·n·r + n_v³/3 + 2·n_v²·n_t, float64) and 2·a·n_v·n_t·V. The float64 scores of
    near-tying targets are not counted.
    """
    return Work(*_lgo_flops(n, r, n_folds, n_alphas, voxels))


@functools.lru_cache(maxsize=4096)
def _lgo_flops(n: int, r: int, n_folds: int, n_alphas: int, voxels: int) -> tuple[float, ...]:
    n_v = math.ceil(n / n_folds)
    n_t = n - n_v
    if n - r >= 2 * n_v:
        gemm64 = 2.0 * n_v * n_v * r + n_alphas * (4.0 * n_v * n_v * r + float(n_v) ** 3)
        gemm32 = 2.0 * n_alphas * n_v * (r + 1) * voxels + 2.0 * r * n_v * voxels
    else:
        gemm64 = 2.0 * n_v * n * r + n_alphas * (
            2.0 * n_v * n * r + float(n_v) ** 3 / 3 + 2.0 * n_v * n_v * n_t
        )
        gemm32 = 2.0 * n_alphas * n_v * n_t * voxels
    return n_folds * gemm64, 2.0 * r * n * voxels + n_folds * gemm32, 0.0


def thin_svd_flops(n: int, p: int) -> Work:
    """Work of :func:`encscale.encoding.ridge.factorise_features` on n × p features: the
    smaller Gram matrix (p < n: XᵀX, 2·n·p²; else X Xᵀ, 2·n²·p), its eigendecomposition
    (9·min(n, p)³) and the other factor (2·n·p·r)."""
    m = min(n, p)
    return Work(2.0 * n * p * m + 2.0 * n * p * min(n - 1, p), 0.0, EIGH_FLOPS * float(m) ** 3)


def fit_job_work(shapes: FitShapes) -> Work:
    """Floating-point work of a subject × model job (:mod:`encscale.encoding.subject`).

    Per kernel-route set its kernel over all rows, 2·rows²·p; per draw of n samples a kernel
    set's eigendecomposition 9n³ and the evaluation rows' projection 2·n_eval·n·r, a primal
    set's thin SVD (:func:`thin_svd_flops`) and 2·n_eval·p·r; then per draw and set the
    cross-validation (:func:`lgo_flops`) and the evaluation predictions of the voxels it
    wins (counted for all voxels); r = min(n − 1, p).
    """
    work = Work()
    routes = [shapes.route_of(f) for f in range(len(shapes.widths))]
    for (p, route), count in Counter(zip(shapes.widths, routes, strict=True)).items():
        one = Work()  # sets of one width and route cost alike
        if route == "kernel":
            one.gemm64 += 2.0 * shapes.rows * shapes.rows * p
        for n in shapes.draws:
            r = min(n - 1, p)
            if route == "kernel":
                one.eigh += EIGH_FLOPS * float(n) ** 3
                one.gemm64 += 2.0 * shapes.n_eval * n * min(n, p)
            else:
                one.add(thin_svd_flops(n, p))
                one.gemm64 += 2.0 * shapes.n_eval * p * min(n, p)
            one.add(lgo_flops(n, r, shapes.n_folds, shapes.n_alphas, shapes.voxels))
            one.gemm32 += 2.0 * shapes.n_eval * r * shapes.voxels
        work.add(one, count)
    return work


def runtime_min(
    shapes: FitShapes,
    device: str,
    read_bytes: float,
    attempt: int = 1,
    forward_flop: float = 0.0,
    half: bool = False,
) -> int:
    """A job's time request in minutes: its work at ``device``'s rates (``cpu``, or ``h100``
    for any CUDA device), ``read_bytes`` from storage and ``forward_flop`` of a model's
    forward passes (``half``: in bf16/fp16), three times over (the rates are estimates, and
    the per-penalty work runs below them on small blocks), at least 10 minutes, and twice
    that again for every retry."""
    rates = RATES["cpu" if device == "cpu" else "h100"]
    forward = forward_flop / (rates.forward_half if half else rates.forward_fp32)
    seconds = fit_job_work(shapes).seconds(rates) + read_bytes / rates.storage + forward
    return math.ceil(max(10.0, 3 * seconds / 60) * 2 ** (attempt - 1))


def factorisation_seconds(
    route: str, p: int, rows: int, draws: Sequence[int], n_eval: int
) -> float:
    """Estimated seconds to factorise one feature set of p columns for every draw.

    kernel: the kernel over all ``rows`` once (float64), then per draw of n samples an
    eigendecomposition of its n × n block and the evaluation rows' projection; primal: per
    draw XᵀX (p × p, float64), its eigendecomposition and U = X V.
    """
    if route == "kernel":
        seconds = 2.0 * rows * rows * p / GEMM64_RATE
        for n in draws:
            seconds += EIGH_FLOPS * n**3 / EIGH_RATE + 2.0 * n_eval * n * min(n, p) / GEMM64_RATE
        return seconds
    if route != "primal":
        raise ValueError(f"route must be one of {ROUTES}, got {route!r}")
    seconds = 0.0
    for n in draws:
        r = min(n, p)
        seconds += (
            EIGH_FLOPS * p**3 / EIGH_RATE + 2.0 * (n * p * p + (n + n_eval) * p * r) / GEMM64_RATE
        )
    return seconds


def choose_route(p: int, rows: int, draws: Sequence[int], n_eval: int) -> str:
    """The cheaper way to factorise a set of p columns (:func:`factorisation_seconds`)."""
    kernel = factorisation_seconds("kernel", p, rows, draws, n_eval)
    return (
        "kernel" if kernel <= factorisation_seconds("primal", p, rows, draws, n_eval) else "primal"
    )


def set_bytes(route: str, p: int, rows: int) -> int:
    """Memory one formed set holds while its draws are fitted: its kernel over all rows
    (float64) or its features (float32)."""
    return 8 * rows * rows if route == "kernel" else 4 * rows * p


def draw_work_bytes(
    n: int, r: int, shapes: FitShapes, voxel_batch: int, gram: int | None = None
) -> int:
    """Peak working memory of one draw of n samples and rank r (factorisation, operators,
    one voxel batch of the cross-validation, the targets scored again in float64, the
    evaluation rows' predictions); ``gram``: the side of the matrix it decomposes (default
    n, the draw's kernel; p for features narrower than the draw)."""
    n_val = math.ceil(n / shapes.n_folds)
    n_train = n - n_val
    well = n - r >= 2 * n_val
    m = n if gram is None else gram
    factor = 8 * m * m * 3 + 8 * n * r + 4 * n * r  # block, eigenvectors + workspace; U
    # the operators: float64, every fold's where they are kept, and one fold's in float32
    width = r + 1 if well else n_train
    kept = 8 * shapes.n_alphas * n * width
    float64 = kept if kept <= KEEP_OPS_BYTES else 8 * shapes.n_alphas * n_val * width
    block = 8 * shapes.n_alphas * n_val * (n_val + r) if well else SMOOTHER_BLOCK_BYTES
    scratch = 2 * min(block, SMOOTHER_BLOCK_BYTES)  # one block of penalties' products
    ops = float64 + 4 * shapes.n_alphas * n_val * width + scratch
    batch = 4 * shapes.n_alphas * n_val * voxel_batch * 3 + 4 * n * voxel_batch * 2
    # near-tying targets scored again in float64, half a batch at a time: their columns (the
    # copy and its float64 cast); their float64 work fits in the float32 batch's
    rescored = 12 * n * min(shapes.voxels, max(1, voxel_batch // 2))
    proj = 4 * r * shapes.voxels + 8 * shapes.n_eval * r
    return factor + ops + batch + rescored + proj


def fixed_bytes(shapes: FitShapes) -> int:
    """Memory held for the whole job: responses, each draw's targets and running best."""
    responses = 4 * (shapes.n_train + shapes.n_eval) * shapes.voxels
    targets = 4 * sum(shapes.draws) * shapes.voxels
    n_sets = max(len(shapes.widths), 1)
    state = len(shapes.draws) * shapes.voxels * (4 * n_sets + 4 * shapes.n_eval + 8 * 4)
    return BASE_BYTES + responses + targets + state


def peak_bytes(
    shapes: FitShapes, group_bytes: int | None = None, voxel_batch: int | None = None
) -> int:
    """Peak memory of the job: what it holds throughout, the sets of one layer formed at
    once (``group_bytes``, default: the largest layer's sets all at once), one chunk of a
    map being read, and the largest draw's work."""
    voxel_batch = voxel_batch or default_voxel_batch(shapes)
    if group_bytes is None:
        per_set = sorted(
            (set_bytes(shapes.route_of(f), p, shapes.rows) for f, p in enumerate(shapes.widths)),
            reverse=True,
        )
        group_bytes = sum(per_set[: shapes.ks_per_layer])
    chunk = chunk_bytes(shapes)
    work = max(
        (
            draw_work_bytes(n, min(n - 1, max(shapes.widths, default=1)), shapes, voxel_batch)
            for n in shapes.draws
        ),
        default=0,
    )
    return fixed_bytes(shapes) + group_bytes + max(chunk, work)


def chunk_bytes(shapes: FitShapes) -> int:
    """Memory of reading and pooling one chunk of a map's channels for every row: the read
    (the stored values and their float32 copy, or the copy and its finiteness check: 1.5×
    the float32 chunk), then the chunk with the largest pooled set that is not the whole map
    (a whole map is the chunk itself), torch's pooling indices for a block of images and one
    float64 block of columns."""
    if not shapes.map_values:
        return 0
    read = min(CHUNK_BYTES, 4 * shapes.rows * shapes.map_values)
    pooled_width = max((p for p in shapes.widths if p < shapes.map_values), default=0)
    pooled = read * pooled_width / shapes.map_values
    pooling = read + pooled + POOL_INDEX_BYTES + 8 * shapes.rows * KERNEL_BLOCK
    return int(max(1.5 * read, pooling))


def default_voxel_batch(shapes: FitShapes, budget: int | None = None) -> int:
    """Voxels evaluated together: one (alphas × validation rows × batch) float32 block of at
    most 256 MB, and smaller where the job's peak would exceed ``budget`` bytes (at least 16
    voxels)."""
    n_val = math.ceil(max(shapes.draws, default=1) / shapes.n_folds)
    per_voxel = 4 * shapes.n_alphas * n_val * 3 + 4 * max(shapes.draws, default=1) * 2
    batch = max(1, min(shapes.voxels, 256 * 2**20 // (4 * shapes.n_alphas * n_val)))
    if budget is not None:
        over = peak_bytes(shapes, voxel_batch=batch) - budget
        if over > 0:
            batch = max(16, batch - math.ceil(over / per_voxel))
    return batch


def fit_job_shapes(
    responses_path: str,
    features_path: str,
    draws: Sequence[int],
    settings: Mapping[str, Any],
) -> FitShapes:
    """The shapes a subject × model job will meet, read from its input files' metadata:
    ``draws`` the size of every (size, seed) it fits, ``settings`` the ``encoding`` config
    (``pool_sizes``, ``n_folds``, ``alphas.num``). Every training and evaluation row is
    counted as read (an upper bound on the rows the draws use)."""
    sizes = response_shapes(responses_path)
    n_eval = sizes["n_test"] + sizes["n_challenge"]
    with open_features(features_path) as features:
        sets = features.fit_sets(settings.get("pool_sizes"))
        maps = features.maps
    per_layer: dict[str, int] = {}
    for fs in sets:
        per_layer[fs.layer] = per_layer.get(fs.layer, 0) + 1
    return FitShapes(
        rows=sizes["n_train"] + n_eval,
        n_train=sizes["n_train"],
        n_eval=n_eval,
        voxels=sizes["columns"],
        draws=list(draws),
        widths=[fs.width for fs in sets],
        n_alphas=int(settings["alphas"]["num"]),
        n_folds=int(settings["n_folds"]),
        map_values=max((m.channels * m.height * m.width for m in maps), default=0),
        ks_per_layer=max(per_layer.values(), default=1),
    )


def mem_mb(shapes: FitShapes, attempt: int = 1) -> int:
    """A job's memory request in MB: its peak (:func:`peak_bytes`), and half as much again
    for every retry (Snakemake's ``attempt``)."""
    return request_mb(peak_bytes(shapes), attempt)


def request_mb(peak: float, attempt: int = 1) -> int:
    """The request (MB) for a ``peak`` in bytes, half as much again for every retry."""
    return math.ceil(peak * (1 + 0.5 * (attempt - 1)) / 2**20)


def one_fit_peak_bytes(shapes: FitShapes, n_lags: int = 1) -> int:
    """Peak memory (bytes) of one fit file's job (:func:`encscale.encoding.fit.fit_encoding`,
    the draw of ``shapes.draws[0]`` samples, one set at a time): the responses and the
    draw's targets, per-set scores, a layer map read for every row (``map_values``), the
    widest set (FIR with ``n_lags`` lags: every lag's features side by side) for the draw
    and the evaluation samples in float32 with the float64 centred copy the factorisation
    makes and the right singular vectors (p × min(n, p), float64 and float32), the draw's
    work (:func:`draw_work_bytes`, the Gram matrix min(n, p) on a side) and the
    predictions."""
    n = shapes.draws[0]
    p = max(shapes.widths, default=1) * n_lags
    held = 4 * (shapes.n_train + shapes.n_eval + n) * shapes.voxels
    scores = 8 * (len(shapes.widths) + 2 * shapes.n_alphas) * shapes.voxels
    read = 4 * shapes.rows * shapes.map_values
    features = 4 * (n + shapes.n_eval) * p + 8 * n * p
    features += 12 * p * min(n, p)  # the right singular vectors V, float64 and float32
    batch = default_voxel_batch(shapes)
    work = draw_work_bytes(n, min(n - 1, p), shapes, batch, gram=min(n, p))
    predictions = 2 * 4 * shapes.n_eval * shapes.voxels
    return BASE_BYTES + held + scores + read + features + work + predictions


def one_fit_mem_mb(
    responses_path: str,
    features_path: str,
    size: int | None,
    settings: Mapping[str, Any],
    attempt: int = 1,
) -> int:
    """A fit file's job's memory request (MB): :func:`request_mb` of
    :func:`one_fit_peak_bytes` for the shapes of its input files (``size`` None: every
    training sample) and the ``encoding`` ``settings`` (``lag_mode``: fir multiplies the
    width by the lags)."""
    sizes = response_shapes(responses_path)
    draw = sizes["n_train"] if size is None else size
    shapes = fit_job_shapes(responses_path, features_path, [draw], settings)
    fir = settings.get("lag_mode", "fir") == "fir"
    return request_mb(one_fit_peak_bytes(shapes, sizes["n_lags"] if fir else 1), attempt)


def planned_shapes(
    *,
    rows: int,
    n_eval: int,
    voxels: int,
    draws: Sequence[int],
    settings: Mapping[str, Any],
    largest_map_side: int = 16,
) -> FitShapes:
    """Shapes to plan with before the input files exist: every set assumed on the kernel
    route (the most memory), ``pool_sizes`` capped at ``largest_map_side``."""
    pool = settings.get("pool_sizes") or [1]
    ks = range(1, largest_map_side + 1) if pool == "all" else pool
    n_ks = len({min(int(k), largest_map_side) for k in ks})
    return FitShapes(
        rows=rows,
        n_train=rows - n_eval,
        n_eval=n_eval,
        voxels=voxels,
        draws=list(draws),
        widths=[rows] * n_ks,
        n_alphas=int(settings["alphas"]["num"]),
        n_folds=int(settings["n_folds"]),
        ks_per_layer=n_ks,
        routes=["kernel"] * n_ks,
    )


def map_shapes(
    *,
    rows: int,
    n_eval: int,
    voxels: int,
    draws: Sequence[int],
    settings: Mapping[str, Any],
    maps: Sequence[Sequence[int]],
) -> FitShapes:
    """Shapes of a job whose layers' maps (C, h, w) are known without a features file (the
    model check's, for ``features.store: none``): each layer's map pooled to every k of
    ``pool_sizes`` capped at its side."""
    pool = settings.get("pool_sizes") or [1]
    grids = [pool_grid(pool, min(h, w)) for _, h, w in maps]
    return FitShapes(
        rows=rows,
        n_train=rows - n_eval,
        n_eval=n_eval,
        voxels=voxels,
        draws=list(draws),
        widths=[c * k * k for (c, _, _), grid in zip(maps, grids, strict=True) for k in grid],
        n_alphas=int(settings["alphas"]["num"]),
        n_folds=int(settings["n_folds"]),
        map_values=max((c * h * w for c, h, w in maps), default=0),
        ks_per_layer=max((len(g) for g in grids), default=1),
    )


def model_maps_bytes(
    rows: int,
    maps: Sequence[Sequence[int]],
    n_params: int,
    itemsize: int,
    group_bytes: int,
    batch_size: int,
) -> int:
    """What running the model in a fit job adds to its memory: the weights (float32), one
    group of layers' maps over the job's ``rows`` images (``group_bytes`` at most, the
    largest layer's at least, in the storage dtype's ``itemsize``) and one batch's chosen
    maps in float32, twice over for the activations around them."""
    per_image = [c * h * w for c, h, w in maps]
    held = min(max(group_bytes, rows * max(per_image) * itemsize), rows * sum(per_image) * itemsize)
    return 4 * n_params + held + 2 * 4 * batch_size * sum(per_image)


def model_maps_passes(
    rows: int, maps: Sequence[Sequence[int]], itemsize: int, group_bytes: int
) -> int:
    """Forward passes over the job's images: one per group of layers whose maps fit
    ``group_bytes`` (:func:`encscale.contracts.layer_groups`, as the job forms them)."""
    return len(layer_groups([rows * c * h * w * itemsize for c, h, w in maps], group_bytes))


def model_maps_depth(
    rows: int, maps: Sequence[Sequence[int]], itemsize: int, group_bytes: int
) -> float:
    """Whole forward passes' worth of work of those passes: each goes as far as its group's
    deepest chosen layer, taken as that share of the model (layers of equal cost)."""
    groups = layer_groups([rows * c * h * w * itemsize for c, h, w in maps], group_bytes)
    return sum((group[-1] + 1) / len(maps) for group in groups)
