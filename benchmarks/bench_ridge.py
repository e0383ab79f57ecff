"""Benchmark encscale's ridge CV against himalaya and scikit-learn on the same problems.

    python benchmarks/bench_ridge.py [--shape a|b|c|all] [--quick] [--repeats 3] [--alphas -1:7:9]

Problems: features X = Z · diag(spectrum) (optionally rotated) with spectrum ∝ k^-decay,
scaled to a mean feature variance of 1, and targets Y = X W + noise whose signal-to-noise
ratio is log-spread over the voxels (10^-2..10^1), so the best penalty (≈ p / SNR) differs
across voxels. Shapes (training samples n, features p, voxels v; plus ``--n-test`` held out):

    a: n=4000, p=2048, v=8000              (primal regime, p < n)
    b: n=4000, p=8192, v=8000              (kernel regime, p ≥ n)
    c: 12 feature sets of p=1024, n=4000, v=8000, each voxel driven by one set (selection)

Methods, all on the same float32 data, the same 5 contiguous folds (himalaya gets the very
same index arrays as ``cv=``) and the same penalties:

    encscale     fit_ridge_cv (a, b) / fit_ridge_cv_select (c), scoring "r".
    himalaya     RidgeCV (p < n) or KernelRidgeCV (p ≥ n), backends numpy, torch (and
                 torch_cuda when available); fit_intercept=True, which centres X and Y with
                 each training fold's means as encscale does; correlation_score,
                 local_alpha=True, conservative=False. For (c) himalaya has no per-voxel
                 choice among feature sets: one RidgeCV per set, then per voxel the set with
                 the best ``cv_scores_`` ("12 fits + argmax"), predicting with that set's fit.
    scikit-learn RidgeCV(alphas, alpha_per_target=True): its only per-target mode is its
                 efficient leave-one-out CV, scored by squared error (an "r" scorer would be
                 called per target and penalty in Python); for (c) one fit per set + argmax
                 of ``best_score_``.

Every method is warmed up before it is timed: one untimed fit of a small problem of the same
kind (the shape's regime, p < n or p ≥ n, and number of sets; 300 training samples, 200
voxels), so that imports, thread pools and first-call set-up stay out of the timings.

Columns: median wall time of ``--repeats`` fits (prediction excluded; 3 by default, quick
too) and their spread (min/median/max); peak extra resident memory during a fit (RSS
sampled every 5 ms by a thread, minus the RSS at the call's start; tracemalloc does not see
torch's allocations; glibc's malloc_trim runs before each fit so that pages freed by an
earlier method do not hide a later one's peak); mean test r of the refit predictions on the
held-out samples; and the share of voxels whose chosen penalty (for (c):
set and penalty) equals himalaya's torch backend's (its numpy backend, where it is the only
one run; in the kernel regime it picks other penalties for ~15% of voxels, with a lower
test r, than both its torch backend and encscale). The last line printed is
``speedup_vs_himalaya=<x.xx>``: himalaya's best CPU backend time / encscale's time for the
chosen shape (shape a with ``--shape all``).

numpy's BLAS reads OPENBLAS_CORETYPE at import: set it in the environment, not here.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import hashlib
import os
import statistics
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

import encscale.encoding.ridge
from encscale.encoding.ridge import fit_ridge_cv, fit_ridge_cv_select, kfold_splits
from encscale.metrics import pearson_r

SHAPES = {  # name: (n_train, p, v, n_sets)
    "a": (4000, 2048, 8000, 1),
    "b": (4000, 8192, 8000, 1),
    "c": (4000, 1024, 8000, 12),
}
QUICK_SHAPES = {
    "a": (1000, 512, 1000, 1),
    "b": (1000, 2048, 1000, 1),
    "c": (1000, 512, 1000, 4),
}
BLOCK_BYTES = 512 * 2**20  # himalaya's target batches keep one block under this, like encscale
WARM_UP_N, WARM_UP_V = 300, 200  # the warm-up problem's training samples and voxels


@dataclass
class Problem:
    """Feature sets and targets; the first ``n_train`` rows train, the rest test."""

    Xs: list[np.ndarray]  # per set (n_train + n_test, p), float32
    Y: np.ndarray  # (n_train + n_test, v), float32
    n_train: int
    driver: np.ndarray  # (v,) index of the set that drives each voxel

    def train(self, f: int) -> np.ndarray:
        return self.Xs[f][: self.n_train]

    def test(self, f: int) -> np.ndarray:
        return self.Xs[f][self.n_train :]


@dataclass
class Choice:
    """What a fitted method chose and how well it predicts the test samples."""

    alpha: np.ndarray  # (v,) chosen penalty
    best_set: np.ndarray  # (v,) chosen feature set (zeros for one set)
    test_r: float  # mean over voxels of Pearson r on the test samples


@dataclass
class Method:
    """A benchmarked method: ``fit()`` is timed, ``read(model)`` is not."""

    name: str
    fit: Callable[[], object]
    read: Callable[[object], Choice]
    is_himalaya_cpu: bool = False


@dataclass
class Outcome:
    name: str
    seconds: list[float]
    peak_mb: float
    choice: Choice
    is_himalaya_cpu: bool


# --- problems -------------------------------------------------------------------------------


def parse_alphas(text: str) -> np.ndarray:
    """``"lo:hi:num"`` → np.logspace(lo, hi, num); otherwise comma-separated values."""
    if ":" in text:
        lo, hi, num = text.split(":")
        return np.logspace(float(lo), float(hi), int(num))
    return np.array([float(a) for a in text.split(",")])


def make_features(
    rows: int, p: int, decay: float, rotate: bool, rng: np.random.Generator
) -> np.ndarray:
    """X (rows, p) float32 = Z diag(spectrum) [R]: spectrum ∝ k^-decay, mean variance 1."""
    spectrum = np.arange(1, p + 1, dtype=np.float64) ** -decay
    spectrum *= np.sqrt(p / np.sum(spectrum**2))
    X = rng.standard_normal((rows, p), dtype=np.float32) * spectrum.astype(np.float32)
    if rotate:
        q, _ = np.linalg.qr(rng.standard_normal((p, p)))
        X = X @ q.astype(np.float32)
    return X


def make_problem(
    n_train: int,
    n_test: int,
    p: int,
    v: int,
    n_sets: int,
    decay: float = 0.75,
    rotate: bool = False,
    seed: int = 0,
) -> Problem:
    """Sets of features and voxels each driven by one set, noise variance 1, SNR 10^-2..10^1.

    With weights W ~ N(0, SNR/p) and features of mean variance 1, the signal variance is the
    SNR and the Bayes-optimal penalty is p / SNR, so chosen penalties spread over ~3 decades.
    """
    rng = np.random.default_rng(seed)
    rows = n_train + n_test
    Xs = [make_features(rows, p, decay, rotate, rng) for _ in range(n_sets)]
    driver = np.arange(v) % n_sets
    snr = rng.permutation(np.logspace(-2, 1, v))
    Y = rng.standard_normal((rows, v), dtype=np.float32)
    for f in range(n_sets):
        cols = np.flatnonzero(driver == f)
        W = rng.standard_normal((p, cols.size), dtype=np.float32)
        W *= np.sqrt(snr[cols] / p).astype(np.float32)
        Y[:, cols] += Xs[f] @ W
    return Problem(Xs, Y, n_train, driver)


# --- measurement ----------------------------------------------------------------------------


def rss_bytes() -> int:
    """Resident set size of this process (psutil if installed, else /proc/self/statm)."""
    try:
        import psutil
    except ImportError:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    return psutil.Process().memory_info().rss


def release_free_memory() -> None:
    """Hand freed heap memory back to the OS (glibc ``malloc_trim``), so RSS starts low.

    Without it a later method reuses pages an earlier one freed and its peak looks smaller.
    """
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def run_sampled(fn: Callable[[], object], interval: float = 0.005) -> tuple[object, float, int]:
    """Call ``fn``: its result, wall seconds and peak RSS above the RSS at the start."""
    start_rss = rss_bytes()
    peak = [start_rss]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(interval):
            peak[0] = max(peak[0], rss_bytes())

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    start = time.perf_counter()
    try:
        result = fn()
    finally:
        seconds = time.perf_counter() - start
        done.set()
        thread.join()
    peak[0] = max(peak[0], rss_bytes())
    return result, seconds, peak[0] - start_rss


def measure(method: Method, warm_up: Method, repeat: int) -> Outcome:
    """Fit ``warm_up`` once, untimed; then time ``repeat`` fits of ``method`` (peak memory:
    max over them) and read the last fit's choice."""
    warm_up.fit()
    seconds, peak, model = [], 0, None
    for _ in range(repeat):
        model = None
        gc.collect()
        release_free_memory()
        model, sec, extra = run_sampled(method.fit)
        seconds.append(sec)
        peak = max(peak, extra)
    choice = method.read(model)
    return Outcome(method.name, seconds, peak / 2**20, choice, method.is_himalaya_cpu)


def warm_up_problem(n: int, p: int, n_sets: int, args: argparse.Namespace) -> Problem:
    """A small problem in the same regime as (n, p) (p < n or p ≥ n) with ``n_sets`` sets."""
    p_small = max(8, round(p * WARM_UP_N / n))
    return make_problem(
        WARM_UP_N, 100, p_small, WARM_UP_V, n_sets, args.decay, args.rotate, args.seed + 1
    )


def spread(seconds: list[float]) -> str:
    """min/median/max of the timed runs (the one value for a single run)."""
    if len(seconds) == 1:
        return f"{seconds[0]:.2f}"
    return f"{min(seconds):.2f}/{statistics.median(seconds):.2f}/{max(seconds):.2f}"


# --- methods --------------------------------------------------------------------------------


def mean_test_r(problem: Problem, pred: np.ndarray) -> float:
    return float(np.mean(pearson_r(problem.Y[problem.n_train :], np.asarray(pred))))


def grid_index(alpha: np.ndarray, alphas: np.ndarray) -> np.ndarray:
    """Index (v,) of the nearest grid penalty (himalaya returns float32 exp(-log) penalties)."""
    alpha = np.asarray(alpha, dtype=np.float64).reshape(-1)
    return np.abs(np.log(alpha)[:, None] - np.log(alphas)[None, :]).argmin(1)


def target_batch(a: int, rows: int, v: int) -> int:
    """Targets per batch so that one float32 (a × rows × batch) block stays ≲ 512 MB."""
    return int(min(v, max(1, BLOCK_BYTES // (4 * a * rows))))


def encscale_method(problem: Problem, alphas: np.ndarray, folds: list, device: str) -> Method:
    """encscale's fit_ridge_cv (one set) or fit_ridge_cv_select (several), scoring "r"."""
    n_sets, Y = len(problem.Xs), problem.Y[: problem.n_train]
    if n_sets == 1:

        def fit() -> object:
            return fit_ridge_cv(problem.train(0), Y, alphas, folds, scoring="r", device=device)

        def read(res) -> Choice:
            no_set = np.zeros(res.best_alpha.size, dtype=int)
            return Choice(
                res.best_alpha, no_set, mean_test_r(problem, res.predict(problem.test(0)))
            )

        return Method(f"encscale fit_ridge_cv ({device})", fit, read)

    def fit_select() -> object:
        return fit_ridge_cv_select(
            problem.train, n_sets, Y, alphas, folds, scoring="r", device=device
        )

    def read_select(res) -> Choice:
        return Choice(res.best_alpha, res.best_set, mean_test_r(problem, res.predict(problem.test)))

    return Method(f"encscale fit_ridge_cv_select ({device})", fit_select, read_select)


def himalaya_estimator(problem: Problem, alphas: np.ndarray, folds: list) -> object:
    """An unfitted himalaya RidgeCV (p < n) or KernelRidgeCV (p ≥ n) matching encscale."""
    from himalaya.kernel_ridge import KernelRidgeCV
    from himalaya.ridge import RidgeCV
    from himalaya.scoring import correlation_score

    n, p, v = problem.n_train, problem.Xs[0].shape[1], problem.Y.shape[1]
    n_val = max(val.size for _, val in folds)
    params = dict(
        score_func=correlation_score,
        local_alpha=True,
        conservative=False,
        n_alphas_batch=len(alphas),
        n_targets_batch=target_batch(len(alphas), n_val, v),
        n_targets_batch_refit=target_batch(len(alphas), min(n, p), v),
    )
    common = dict(alphas=alphas, fit_intercept=True, solver_params=params, cv=folds)
    if p < n:
        return RidgeCV(solver="svd", **common)
    return KernelRidgeCV(kernel="linear", solver="eigenvalues", **common)


def himalaya_method(problem: Problem, alphas: np.ndarray, folds: list, backend: str) -> Method:
    """himalaya on ``backend``: one CV fit, or one per set then the best set per voxel."""
    from himalaya.backend import set_backend

    n_sets, Y = len(problem.Xs), problem.Y[: problem.n_train]
    kind = "RidgeCV" if problem.Xs[0].shape[1] < problem.n_train else "KernelRidgeCV"

    def fit() -> object:
        set_backend(backend, on_error="raise")
        return [
            himalaya_estimator(problem, alphas, folds).fit(problem.train(f), Y)
            for f in range(n_sets)
        ]

    def read(models) -> Choice:
        be = set_backend(backend, on_error="raise")
        scores = np.stack([np.asarray(be.to_numpy(m.cv_scores_)).reshape(-1) for m in models])
        best_set = np.argmax(scores, axis=0)  # ties → lower set index
        cols = np.arange(best_set.size)
        alpha = np.stack([np.asarray(be.to_numpy(m.best_alphas_)).reshape(-1) for m in models])
        pred = np.empty(problem.Y[problem.n_train :].shape, dtype=np.float32)
        for f, m in enumerate(models):
            chosen = best_set == f
            if chosen.any():
                pred[:, chosen] = np.asarray(be.to_numpy(m.predict(problem.test(f))))[:, chosen]
        return Choice(alpha[best_set, cols], best_set, mean_test_r(problem, pred))

    name = f"himalaya {kind} ({backend})"
    if n_sets > 1:
        name = f"himalaya {kind}, {n_sets} fits + argmax ({backend})"
    return Method(name, fit, read, is_himalaya_cpu=backend in ("numpy", "torch"))


def sklearn_method(problem: Problem, alphas: np.ndarray) -> Method:
    """scikit-learn RidgeCV, leave-one-out (its only per-target mode), one fit per set."""
    from sklearn.linear_model import RidgeCV

    n_sets, Y = len(problem.Xs), problem.Y[: problem.n_train]

    def fit() -> object:
        return [
            RidgeCV(alphas=alphas, alpha_per_target=True).fit(problem.train(f), Y)
            for f in range(n_sets)
        ]

    def read(models) -> Choice:
        scores = np.stack([np.reshape(m.best_score_, -1) for m in models])  # −LOO MSE
        best_set = np.argmax(scores, axis=0)
        cols = np.arange(best_set.size)
        alpha = np.stack([np.reshape(m.alpha_, -1) for m in models])
        pred = np.empty(problem.Y[problem.n_train :].shape, dtype=np.float32)
        for f, m in enumerate(models):
            chosen = best_set == f
            if chosen.any():
                pred[:, chosen] = m.predict(problem.test(f))[:, chosen]
        return Choice(alpha[best_set, cols], best_set, mean_test_r(problem, pred))

    name = "scikit-learn RidgeCV (leave-one-out, neg. MSE)"
    if n_sets > 1:
        name = f"scikit-learn RidgeCV (LOO, neg. MSE), {n_sets} fits + argmax"
    return Method(name, fit, read)


METHODS = ("encscale", "himalaya-numpy", "himalaya-torch", "himalaya-torch_cuda", "sklearn")


def all_methods(
    problem: Problem, alphas: np.ndarray, folds: list, device: str, names: list[str]
) -> list[Method]:
    """The methods named in ``names`` (see METHODS); torch_cuda only where CUDA is available."""
    if "himalaya-torch_cuda" in names and not torch.cuda.is_available():
        names = [name for name in names if name != "himalaya-torch_cuda"]
    build = {
        "encscale": lambda: encscale_method(problem, alphas, folds, device),
        "sklearn": lambda: sklearn_method(problem, alphas),
    }
    for backend in ("numpy", "torch", "torch_cuda"):
        build[f"himalaya-{backend}"] = lambda b=backend: himalaya_method(problem, alphas, folds, b)
    return [build[name]() for name in METHODS if name in names]


# --- report ---------------------------------------------------------------------------------


def blas_settings() -> str:
    """OPENBLAS_CORETYPE, torch's threads and BLAS, and every BLAS/OpenMP pool loaded."""
    from threadpoolctl import threadpool_info

    config = torch.__config__.show()
    torch_blas = [w for w in config.replace(",", " ").split() if w.startswith("BLAS_INFO=")]
    env = ("OPENBLAS_CORETYPE", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
    lines = [
        ", ".join(f"{var}={os.environ.get(var, '(unset)')}" for var in env),
        f"cpus={os.cpu_count()}, numpy {np.__version__}, torch {torch.__version__} "
        f"threads={torch.get_num_threads()} {' '.join(torch_blas)} "
        f"mkldnn={torch.backends.mkldnn.is_available()} cuda={torch.cuda.is_available()}",
    ]
    ridge_file = encscale.encoding.ridge.__file__
    with open(ridge_file, "rb") as fh:
        digest = hashlib.sha1(fh.read()).hexdigest()[:12]
    lines.append(f"encscale.encoding.ridge sha1={digest} ({ridge_file})")
    for pool in threadpool_info():
        arch = pool.get("architecture") or "-"
        lines.append(
            f"  {pool['internal_api']} {pool.get('version') or ''} arch={arch} "
            f"threads={pool['num_threads']}: {os.path.basename(pool['filepath'])}"
        )
    return "\n".join(lines)


def agreement(choice: Choice, ref: Choice, alphas: np.ndarray) -> tuple[float, float]:
    """Shares of voxels with the reference's penalty, and with its (set, penalty) pair."""
    same_alpha = grid_index(choice.alpha, alphas) == grid_index(ref.alpha, alphas)
    same_set = np.asarray(choice.best_set) == np.asarray(ref.best_set)
    return float(same_alpha.mean()), float((same_alpha & same_set).mean())


def print_table(outcomes: list[Outcome], alphas: np.ndarray, n_sets: int) -> None:
    himalaya = [o for o in outcomes if o.is_himalaya_cpu]
    ref = next((o for o in himalaya if "(torch)" in o.name), himalaya[0] if himalaya else None)
    extra = "  same set&alpha" if n_sets > 1 else ""
    print(
        f"{'method':58s} {'time_s':>8s} {'min/med/max_s':>20s} {'peak_MB':>8s} {'test_r':>7s}"
        f"  same alpha as himalaya{extra}"
    )
    for o in outcomes:
        same = "-"
        if ref is not None:
            alpha_share, pair_share = agreement(o.choice, ref.choice, alphas)
            same = f"{100 * alpha_share:6.1f}%"
            if n_sets > 1:
                same += f"   {100 * pair_share:6.1f}%"
            if o is ref:
                same = "(reference)"
        print(
            f"{o.name:58s} {statistics.median(o.seconds):8.2f} {spread(o.seconds):>20s} "
            f"{o.peak_mb:8.0f} {o.choice.test_r:7.4f}  {same}"
        )


def penalty_spread(outcome: Outcome, alphas: np.ndarray) -> str:
    """Counts of voxels per chosen grid penalty, with a warning below 4 distinct values."""
    counts = np.bincount(grid_index(outcome.choice.alpha, alphas), minlength=alphas.size)
    used = int(np.count_nonzero(counts))
    text = ", ".join(f"{a:.0e}:{c}" for a, c in zip(alphas, counts, strict=True) if c)
    warn = "" if used >= 4 else "  WARNING: fewer than 4 distinct penalties"
    return f"{outcome.name}: penalties spread over {used} grid values ({text}){warn}"


def load_note(load_start: float) -> str:
    """1-minute load averages around the shape's runs: above the CPU count, timings are shared."""
    load_end, cpus = os.getloadavg()[0], os.cpu_count() or 1
    note = f"load average (1 min) {load_start:.2f} before, {load_end:.2f} after, {cpus} CPUs"
    if max(load_start, load_end) > cpus + 0.5:
        note += "  WARNING: other processes competed for the CPUs; timings are inflated"
    return note


def speedup(outcomes: list[Outcome]) -> float:
    """himalaya's best CPU backend median time / encscale's median time (nan if either is
    missing)."""
    ours = [statistics.median(o.seconds) for o in outcomes if o.name.startswith("encscale")]
    himalaya = [statistics.median(o.seconds) for o in outcomes if o.is_himalaya_cpu]
    return min(himalaya) / ours[0] if ours and himalaya else float("nan")


def run_shape(name: str, args: argparse.Namespace, alphas: np.ndarray) -> float:
    """Build shape ``name``, benchmark every method, print its table; return the speedup."""
    n, p, v, n_sets = (QUICK_SHAPES if args.quick else SHAPES)[name]
    n_test = min(args.n_test, n) if args.quick else args.n_test
    problem = make_problem(n, n_test, p, v, n_sets, args.decay, args.rotate, args.seed)
    folds = kfold_splits(n, args.folds)
    print(
        f"\n== shape {name}: n={n} (+{n_test} test) p={p} v={v} sets={n_sets} "
        f"folds={args.folds} (contiguous) alphas={alphas.size} "
        f"[{alphas[0]:.3g}..{alphas[-1]:.3g}], median of {args.repeat} run(s), each method "
        f"warmed up on n={WARM_UP_N} p={max(8, round(p * WARM_UP_N / n))} v={WARM_UP_V}"
    )
    warm = warm_up_problem(n, p, n_sets, args)
    warm_folds = kfold_splits(WARM_UP_N, args.folds)
    warm_ups = all_methods(warm, alphas, warm_folds, args.device, args.methods)
    methods = all_methods(problem, alphas, folds, args.device, args.methods)
    load_start = os.getloadavg()[0]
    outcomes = []
    for method, warm_up in zip(methods, warm_ups, strict=True):
        outcomes.append(measure(method, warm_up, args.repeat))
        print(f"   done: {method.name} ({spread(outcomes[-1].seconds)} s)", flush=True)
    print_table(outcomes, alphas, n_sets)
    print(load_note(load_start))
    print(penalty_spread(outcomes[0], alphas))
    ratio = speedup(outcomes)
    print(f"shape {name}: himalaya best CPU backend / encscale = {ratio:.2f}x")
    return ratio


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=["a", "b", "c", "all"], default="a")
    parser.add_argument("--quick", action="store_true", help="scaled-down shapes")
    parser.add_argument(
        "--repeats", "--repeat", dest="repeat", type=int, default=3, help="timed runs per method"
    )
    parser.add_argument("--alphas", default="-1:7:9", help="lo:hi:num (log10) or a,b,c")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--n-test", type=int, default=1000, help="held-out samples")
    parser.add_argument("--decay", type=float, default=0.75, help="spectrum ∝ k^-decay")
    parser.add_argument("--rotate", action="store_true", help="randomly rotate the features")
    parser.add_argument("--device", default="cpu", help="encscale's device")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--methods",
        default=",".join(METHODS),
        help=f"comma-separated subset of {','.join(METHODS)} (default: all available)",
    )
    args = parser.parse_args()
    args.methods = args.methods.split(",")
    unknown = sorted(set(args.methods) - set(METHODS))
    if unknown:
        parser.error(f"unknown --methods {unknown}; choose from {', '.join(METHODS)}")
    if args.repeat < 1:
        parser.error("--repeats must be at least 1")
    return args


def main() -> None:
    args = parse_args()
    alphas = parse_alphas(args.alphas)
    warnings.filterwarnings("ignore", message=".*n_samples.*n_features.*")
    print(blas_settings())
    shapes = ["a", "b", "c"] if args.shape == "all" else [args.shape]
    ratios = {name: run_shape(name, args, alphas) for name in shapes}
    print(f"speedup_vs_himalaya={ratios[shapes[0]]:.2f}")


if __name__ == "__main__":
    main()
