"""Time encscale's ridge CV against scikit-learn's RidgeCV and, if installed, himalaya's.

    OPENBLAS_CORETYPE=Haswell python benchmarks/bench_ridge.py [--n 2000 --p 1024 --v 2000]

encscale: K-fold CV (``--folds``), a penalty per target, refit. scikit-learn's RidgeCV supports
a penalty per target only with its efficient leave-one-out CV (``cv=None``), so that is the
reference here: the same task (per-target penalty among the same grid, then refit) under a
different CV scheme. himalaya's RidgeCV does the same K-fold task as encscale.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import numpy as np
import torch
from sklearn.linear_model import RidgeCV

from encscale.ridge import fit_ridge_cv, kfold_splits


def make_problem(n: int, p: int, v: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian features X (n, p) and targets Y (n, v) with noise that varies over targets."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p), dtype=np.float32)
    W = rng.standard_normal((p, v), dtype=np.float32) / np.sqrt(p)
    noise = np.logspace(-1, 1, v, dtype=np.float32)
    return X, X @ W + rng.standard_normal((n, v), dtype=np.float32) * noise


def timed(fn: Callable[[], object], repeat: int) -> float:
    """Best wall-clock seconds of ``repeat`` calls."""
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def blas_settings() -> str:
    """One line per BLAS/OpenMP pool, plus torch's thread count and OPENBLAS_CORETYPE."""
    from threadpoolctl import threadpool_info

    lines = [
        f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}, "
        f"torch {torch.__version__} threads={torch.get_num_threads()}, cpus={os.cpu_count()}, "
        f"torch BLAS/LAPACK: {'MKL' if torch.backends.mkl.is_available() else 'not MKL'}"
    ]
    for pool in threadpool_info():
        lines.append(
            f"  {pool['internal_api']} {pool.get('version')} ({pool.get('architecture')}), "
            f"{pool['num_threads']} threads: {pool['filepath']}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="samples")
    parser.add_argument("--p", type=int, default=1024, help="features")
    parser.add_argument("--v", type=int, default=2000, help="targets")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--alphas", type=int, default=11, help="penalties, log-spaced 1e-1..1e5")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeat", type=int, default=3, help="timings per method; best kept")
    args = parser.parse_args()

    X, Y = make_problem(args.n, args.p, args.v)
    alphas = np.logspace(-1, 5, args.alphas)
    folds = kfold_splits(args.n, args.folds)
    print(blas_settings())
    print(f"n={args.n} p={args.p} v={args.v} folds={args.folds} alphas={args.alphas}", end=", ")
    print(f"best of {args.repeat} runs")

    ours = timed(lambda: fit_ridge_cv(X, Y, alphas, folds, device=args.device), args.repeat)
    print(f"encscale fit_ridge_cv ({args.folds}-fold, float32): {ours:.2f} s")

    sk = timed(lambda: RidgeCV(alphas=alphas, alpha_per_target=True).fit(X, Y), args.repeat)
    print(f"scikit-learn RidgeCV (leave-one-out, alpha_per_target): {sk:.2f} s")
    print(f"  ratio scikit-learn / encscale: {sk / ours:.2f}x")

    try:
        from himalaya.backend import set_backend
        from himalaya.ridge import RidgeCV as HimalayaRidgeCV
    except ImportError:
        print("himalaya: not installed, skipped")
        return
    set_backend("torch_cuda" if args.device == "cuda" else "torch")
    cv = [(train, val) for train, val in folds]
    hm = timed(lambda: HimalayaRidgeCV(alphas=alphas, cv=cv).fit(X, Y), args.repeat)
    print(f"himalaya RidgeCV ({args.folds}-fold, torch): {hm:.2f} s")
    print(f"  ratio himalaya / encscale: {hm / ours:.2f}x")


if __name__ == "__main__":
    main()
