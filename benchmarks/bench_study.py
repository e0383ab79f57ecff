"""Benchmark one subject × model's encoding fits three ways on a synthetic subject.

    python benchmarks/bench_study.py [--quick] [--repeats R] [--device cpu] [--himalaya-backend B]
                                     [--methods per-fit,new-job,himalaya,store-none]
                                     [--model vit_tiny_patch16_224] [--subject DIR]
                                     [--sizes 250,500] [--verbose]

The subject (:func:`encscale.simulate.subject.write_synthetic_subject`, float16 maps, in a
temporary directory or ``--subject``): a ViT-like model's layer maps and voxels that each
follow one planted layer, pooled to one planted k, at a planted signal-to-noise ratio.

    default  12 layers × 192 channels on 14 × 14; 2,500 images (300 test), 3,000 voxels;
             sizes 250, 500, 1000, 2000 × 2 draws
    --quick  4 layers × 64 channels on 14 × 14; 700 images (100 test), 600 voxels;
             sizes 125, 250, 500 × 2 draws (under two minutes on 2 idle cores)

Every method fits every training size × draw (rows drawn at random from the training split,
5 folds of them seeded by the draw) with every (layer, k) feature set, k × k max-pooled from
the layer's map, k in 1, 2, 4, 7, 14 (k = 14: the whole map), 13 penalties logspace(-1, 5)
and scoring "r", and predicts the test split:

    per-fit    today's route: ``fit_encoding`` once per size × draw.
    new-job    ``fit_subject_model`` once for all sizes × draws.
    store-none ``fit_subject_model`` once for all sizes × draws with no features file
               (``features.store: none``): the model runs over ``stimuli.h5`` itself
               (``encscale.vision.live.ModelMaps``, its layers in groups); needs ``--model``
    himalaya   per draw and set, RidgeCV (p < n) or KernelRidgeCV (p ≥ n) with the very same
               folds as ``cv=`` and the same penalties (backend torch, or torch_cuda with a CUDA
               ``--device``; solver parameters as in bench_ridge.py); the penalties are given
               largest first, so that a tie goes to the larger one, as in encscale, and per
               voxel the best set wins as in encscale (``ridge.is_better``: an equal score
               goes to the larger penalty, then to the lower set index); test predictions of
               the chosen fit. Each layer's map is read once per draw (its training and
               test rows) and pooled with ``maxpool_tokens`` to every k.

With ``--model`` (a timm ViT, random weights, patch 16: depth, width and input side set from
the subject's layers, channels and map side, so the default shapes are ViT-Ti/16 at 224 px),
the maps are no synthetic fields but the model's, extracted from smooth random images
(``encscale.simulate.subject.write_model_subject``, float32) into the features file that the
other methods read; the voxels are planted on them as above. Then store-none runs too, and
the report gives both routes' times and disk (the file route: extraction + new job and the
features file; store-none: the fit job alone, no file) and their agreement: the share of
(draw, voxel) with the same set and penalty, and the largest |Δ test prediction| relative to
the largest prediction (the target: identical choices, within 1e-5).

Each method runs in its own spawned process: one untimed warm-up on a tiny subject, then
``--repeats`` timed runs (fit files written, comparisons excluded). Columns: wall time
(min/median/max over the repeats); MB read from HDF5 (the ``nbytes`` of every array that
``h5py.Dataset.__getitem__`` returns in the method's process, features and responses files,
at their stored dtype); peak RSS (VmHWM of the method's process, reset after the warm-up
through /proc/self/clear_refs, so it includes the interpreter and libraries, as
``encscale.encoding.plan.peak_bytes`` does; the process's ``ru_maxrss`` where the reset is not
available); mean test r; and against himalaya, over every (draw, voxel), the shares with the
same (set, penalty) and the same set, and the largest and mean |Δ test r|. Then per-fit
against the new job, the new job's declared memory (``plan.peak_bytes`` of the
``plan.FitShapes`` that ``fit_subject_model`` builds) next to its peak RSS, and the targets.
The last two lines are ``study_speedup_vs_himalaya=<x.xx>`` and
``study_speedup_vs_per_fit=<x.xx>`` (median wall times over the new job's; nan for a method
left out with ``--methods``).

numpy's BLAS reads OPENBLAS_CORETYPE at import: set it in the environment, not here. Timings
on a machine that other processes share are inflated and uneven (torch's OpenMP threads wait
on each other at every parallel region): a load average above the CPU count is flagged.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import ctypes
import dataclasses
import gc
import multiprocessing
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import torch

from encscale.contracts import open_features, read_fit, read_responses
from encscale.encoding import plan
from encscale.encoding.fit import fit_encoding, subsample
from encscale.encoding.ridge import is_better, kfold_splits
from encscale.encoding.subject import fit_subject_model
from encscale.jobs import peak_rss_bytes
from encscale.metrics import pearson_r
from encscale.simulate.subject import SubjectShapes, write_model_subject, write_synthetic_subject
from encscale.vision.layers import maxpool_tokens

BLOCK_BYTES = 512 * 2**20  # himalaya's target batches keep one block under this (bench_ridge)
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_WAIT_POLICY")
FIT_PARTS = ["best_set", "best_alpha", "feature_sets", "test_pred", "test_r", "cv_score"]


@dataclasses.dataclass(frozen=True)
class Study:
    """A subject's shapes and the fits asked of it: sizes × seeds, folds, penalties, k."""

    shapes: SubjectShapes
    sizes: tuple[int, ...]
    seeds: tuple[int, ...]
    n_folds: int
    alphas: tuple[float, ...]
    ks: tuple[int, ...]

    @property
    def draws(self) -> list[tuple[int, int]]:
        return [(size, seed) for size in self.sizes for seed in self.seeds]


@dataclasses.dataclass(frozen=True)
class Files:
    features: str
    responses: str
    stimuli: str | None = None  # --model: the images, and the model that makes the maps
    model: str | None = None
    spec: dict | None = dataclasses.field(default=None, hash=False)
    extract_s: float = float("nan")  # the features file's extraction, wall time


@dataclasses.dataclass
class Choice:
    """One draw's chosen set and penalty (index into the ascending grid) per voxel, and its
    test predictions' r."""

    best_set: np.ndarray
    alpha_index: np.ndarray
    test_r: np.ndarray
    sets: tuple[str, ...]  # the feature sets' names, in best_set's order


ALPHAS = tuple(float(a) for a in np.logspace(-1, 5, 13))
KS = (1, 2, 4, 7, 14)
FULL = Study(
    SubjectShapes(2500, 300, 3000, 12, 192, 14, planted_ks=(1, 2, 4, 7)),
    (250, 500, 1000, 2000),
    (0, 1),
    5,
    ALPHAS,
    KS,
)
QUICK = Study(
    SubjectShapes(700, 100, 600, 4, 64, 14, planted_ks=(1, 2, 4, 7)),
    (125, 250, 500),
    (0, 1),
    5,
    ALPHAS,
    KS,
)
WARM_UP = Study(  # tiny, but with narrow and wide sets: both routes, RidgeCV and KernelRidgeCV
    SubjectShapes(160, 40, 64, 2, 8, 14, planted_ks=(1, 2)),
    (40, 100),
    (0,),
    5,
    ALPHAS,
    KS,
)


# --- measurement (in each method's process) -----------------------------------------------

READ_BYTES = {"features": 0, "responses": 0, "other": 0}
VERBOSE = [False]  # set in each method's process by --verbose


def note(message: str) -> None:
    """Progress within a method, on stderr, with --verbose."""
    if VERBOSE[0]:
        print(f"      {time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def count_reads() -> None:
    """Sum the bytes of every array h5py's ``Dataset.__getitem__`` returns, per file kind."""
    original = h5py.Dataset.__getitem__

    def counted(self: h5py.Dataset, *args, **kwargs):
        out = original(self, *args, **kwargs)
        name = os.path.basename(self.file.filename)
        kind = name.removesuffix(".h5") if name in ("features.h5", "responses.h5") else "other"
        READ_BYTES[kind] += int(getattr(out, "nbytes", 0))
        return out

    h5py.Dataset.__getitem__ = counted


def reset_peak_rss() -> bool:
    """Reset this process's VmHWM to its current RSS (Linux ≥ 4.0); False if not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return False
    return True


def proc_status(key: str) -> int | None:
    """A ``kB`` line of /proc/self/status in bytes (None where there is none)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(f"{key}:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def release_free_memory() -> None:
    """Hand freed heap memory back to the OS (glibc ``malloc_trim``), so RSS starts low."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


# --- the three methods --------------------------------------------------------------------


def fit_path(out: Path, size: int, seed: int, suffix: str = ".h5") -> Path:
    return out / f"n{size}_s{seed}{suffix}"


def run_per_fit(study: Study, files: Files, out: Path, device: str, backend: str) -> dict:
    """Today's route: one ``fit_encoding`` per size × draw."""
    for size, seed in study.draws:
        fit_encoding(
            files.responses,
            files.features,
            fit_path(out, size, seed),
            size=size,
            seed=seed,
            n_folds=study.n_folds,
            alphas=np.asarray(study.alphas),
            pool_sizes=list(study.ks),
            device=device,
        )
        note(f"per-fit n={size} s={seed} done")
    return {}


def fit_job(study: Study, responses: Path, source: object, out: Path, device: str) -> dict:
    """``fit_subject_model`` once for every size × draw, from ``source``: the features file,
    or the model computing the maps (``ModelMaps``)."""
    routes = fit_subject_model(
        responses,
        source,
        {(size, seed): fit_path(out, size, seed) for size, seed in study.draws},
        n_folds=study.n_folds,
        alphas=np.asarray(study.alphas),
        pool_sizes=list(study.ks),
        device=device,
        progress=note,
    )
    return {"routes": routes}


def run_new_job(study: Study, files: Files, out: Path, device: str, backend: str) -> dict:
    """The new job: ``fit_subject_model`` once for every size × draw."""
    return fit_job(study, files.responses, files.features, out, device)


def run_store_none(study: Study, files: Files, out: Path, device: str, backend: str) -> dict:
    """``features.store: none``: the new job with the model running over the images."""
    from encscale.vision.live import ModelMaps

    maps = ModelMaps(files.stimuli, files.model, files.spec, device=device, progress=note)
    return {**fit_job(study, files.responses, maps, out, device), "passes": maps.passes}


def target_batch(a: int, rows: int, v: int) -> int:
    """Targets per batch so that one float32 (a × rows × batch) block stays ≲ 512 MB."""
    return int(min(v, max(1, BLOCK_BYTES // (4 * a * rows))))


def himalaya_estimator(n: int, p: int, v: int, alphas: np.ndarray, folds: list) -> object:
    """An unfitted himalaya RidgeCV (p < n) or KernelRidgeCV (p ≥ n), as bench_ridge.py."""
    from himalaya.kernel_ridge import KernelRidgeCV
    from himalaya.ridge import RidgeCV
    from himalaya.scoring import correlation_score

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


def grid_index(alpha: np.ndarray, alphas: np.ndarray) -> np.ndarray:
    """Index (v,) of the nearest grid penalty (himalaya returns float32 penalties)."""
    alpha = np.asarray(alpha, dtype=np.float64).reshape(-1)
    return np.abs(np.log(alpha)[:, None] - np.log(alphas)[None, :]).argmin(1)


def run_himalaya(study: Study, files: Files, out: Path, device: str, backend: str) -> dict:
    """Per draw and set one himalaya CV fit, then per voxel the best (set, penalty)."""
    from himalaya.backend import set_backend

    be = set_backend(backend, on_error="raise")
    alphas = np.asarray(study.alphas)
    descending = np.sort(alphas)[::-1].copy()  # himalaya takes the first of equal scores
    resp = read_responses(files.responses, ["train", "test"])
    n_train, n_test = len(resp.train.responses), len(resp.test.stimulus)
    y_test = resp.test.responses
    voxels = y_test.shape[1]
    with open_features(files.features) as features:
        sets = features.fit_sets(list(study.ks))
        maps = {m.layer: m for m in features.maps}
        for size, seed in study.draws:
            rows = subsample(n_train, size, seed, "random")
            folds = kfold_splits(size, study.n_folds, seed=seed)
            y = np.ascontiguousarray(resp.train.responses[rows], dtype=np.float32)
            stimuli = np.concatenate([resp.train.stimulus[rows], resp.test.stimulus])
            best_score = np.full(voxels, -np.inf)
            best_alpha = np.full(voxels, -1, dtype=np.int64)
            best_set = np.zeros(voxels, dtype=np.int64)
            pred = np.zeros((n_test, voxels), dtype=np.float32)
            layer, fmap = None, None
            for f, fs in enumerate(sets):
                if fs.layer != layer:
                    layer, fmap = None, None
                    fmap = torch.from_numpy(features.read_map(maps[fs.layer], stimuli))
                    layer = fs.layer
                x = maxpool_tokens(fmap, fs.k).numpy()
                model = himalaya_estimator(size, x.shape[1], voxels, descending, folds)
                model.fit(x[:size], y)
                score = np.asarray(be.to_numpy(model.cv_scores_), dtype=np.float64).reshape(-1)
                alpha = grid_index(be.to_numpy(model.best_alphas_), alphas)
                better = is_better(score, alpha, best_score, best_alpha)
                if better.any():
                    best_score[better], best_alpha[better], best_set[better] = (
                        score[better],
                        alpha[better],
                        f,
                    )
                    pred[:, better] = np.asarray(be.to_numpy(model.predict(x[size:])))[:, better]
                del model, x
            note(f"himalaya n={size} s={seed} done")
            np.savez(
                fit_path(out, size, seed, ".npz"),
                best_set=best_set,
                alpha_index=best_alpha,
                test_r=pearson_r(y_test, pred).astype(np.float32),
                feature_sets=np.array([fs.name for fs in sets]),
            )
    return {}


METHODS: dict[str, Callable[[Study, Files, Path, str, str], dict]] = {
    "per-fit": run_per_fit,
    "new-job": run_new_job,
    "himalaya": run_himalaya,
    "store-none": run_store_none,
}


def measure_method(
    name: str,
    study: Study,
    files: Files,
    warm: Files,
    out: str,
    repeats: int,
    device: str,
    backend: str,
    verbose: bool = False,
) -> dict:
    """In a fresh process: warm ``name`` up on the tiny subject, then time ``repeats`` runs."""
    warnings.filterwarnings("ignore", message=".*n_samples.*n_features.*")
    count_reads()
    method = METHODS[name]
    warm_out, fits = Path(out) / "warm-up", Path(out) / "fits"
    warm_out.mkdir(parents=True, exist_ok=True)
    fits.mkdir(parents=True, exist_ok=True)
    method(WARM_UP, warm, warm_out, device, backend)
    VERBOSE[0] = verbose
    seconds, peaks, read, info, reset = [], [], {}, {}, True
    gc.collect()
    release_free_memory()
    start_rss = proc_status("VmRSS")
    for _ in range(repeats):
        gc.collect()
        release_free_memory()
        for kind in READ_BYTES:
            READ_BYTES[kind] = 0
        reset = reset_peak_rss() and reset
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        info = method(study, files, fits, device, backend)
        seconds.append(time.perf_counter() - start)
        peaks.append(peak_rss_bytes())
        read = dict(READ_BYTES)
    result = dict(
        seconds=seconds,
        read=read,
        peak_rss=max(peaks),
        peak_reset=reset,
        start_rss=start_rss,
        torch_threads=torch.get_num_threads(),
        info=info,
    )
    if device.startswith("cuda"):
        result["cuda_peak"] = torch.cuda.max_memory_allocated()
    return result


# --- comparison (in the parent) -----------------------------------------------------------


def read_choices(name: str, study: Study, out: Path) -> dict[tuple[int, int], Choice]:
    """Each draw's choices: from the fit files, or himalaya's ``.npz`` files."""
    alphas = np.asarray(study.alphas)
    choices = {}
    for size, seed in study.draws:
        if name == "himalaya":
            with np.load(fit_path(out, size, seed, ".npz")) as z:
                sets = tuple(str(name) for name in z["feature_sets"])
                choices[size, seed] = Choice(z["best_set"], z["alpha_index"], z["test_r"], sets)
            continue
        fit = read_fit(fit_path(out, size, seed), FIT_PARTS)
        choices[size, seed] = Choice(
            fit.best_set,
            grid_index(fit.best_alpha, alphas),
            fit.test_r.astype(np.float64),
            tuple(fit.feature_sets),
        )
    return choices


@dataclasses.dataclass
class Agreement:
    """How two methods' choices agree over every (draw, voxel)."""

    same_pair: float  # share with the same (set, penalty)
    same_set: float  # share with the same set
    max_dr: float  # largest |Δ test r|
    mean_dr: float  # mean |Δ test r|
    max_dr_same: float  # largest |Δ test r| where the (set, penalty) is the same
    worst: str  # the draw with the lowest share of the same (set, penalty)


def compare(a: dict[tuple[int, int], Choice], b: dict[tuple[int, int], Choice]) -> Agreement:
    """The agreement of two methods' choices and test r."""
    if any(a[key].sets != b[key].sets for key in a):
        raise ValueError("the methods' feature sets differ in names or order")
    same_set = {key: a[key].best_set == b[key].best_set for key in a}
    same = {key: same_set[key] & (a[key].alpha_index == b[key].alpha_index) for key in a}
    dr = {key: np.abs(a[key].test_r - b[key].test_r) for key in a}
    worst = min(same, key=lambda key: same[key].mean())
    return Agreement(
        same_pair=float(np.mean(np.concatenate(list(same.values())))),
        same_set=float(np.mean(np.concatenate(list(same_set.values())))),
        max_dr=max(float(d.max()) for d in dr.values()),
        mean_dr=float(np.mean(np.concatenate(list(dr.values())))),
        max_dr_same=max(float(dr[key][same[key]].max(initial=0.0)) for key in a),
        worst=f"n={worst[0]} s={worst[1]}: {100 * same[worst].mean():.2f} %",
    )


def compare_stores(study: Study, files: Files, tmp: Path) -> dict:
    """The file route (extraction + new job) against store-none: disk, and the largest
    |Δ test prediction| relative to the largest prediction over every draw."""
    worst, fits_bytes = 0.0, 0
    for size, seed in study.draws:
        ref = read_fit(fit_path(tmp / "new-job" / "fits", size, seed), ["test_pred"])
        got = read_fit(fit_path(tmp / "store-none" / "fits", size, seed), ["test_pred"])
        scale = float(np.abs(ref.test_pred).max())
        worst = max(worst, float(np.abs(got.test_pred - ref.test_pred).max()) / scale)
        fits_bytes += os.path.getsize(fit_path(tmp / "store-none" / "fits", size, seed))
    return dict(
        max_dpred=worst,
        features_bytes=os.path.getsize(files.features),
        fits_bytes=fits_bytes,
        extract_s=files.extract_s,
    )


def declared_peak(study: Study, files: Files) -> int:
    """``plan.peak_bytes`` of the shapes ``fit_subject_model`` plans the job with."""
    resp = read_responses(files.responses, ["train", "test"], optional=["challenge"])
    n_available = len(resp.train.responses)
    draw_rows = [subsample(n_available, size, seed, "random") for size, seed in study.draws]
    challenge = resp.challenge_stimulus
    eval_stimuli = np.concatenate(
        [resp.test.stimulus, challenge if challenge is not None else np.empty(0, np.int64)]
    )
    used = np.concatenate([resp.train.stimulus[r] for r in draw_rows] + [eval_stimuli])
    with open_features(files.features) as features:
        sets = features.fit_sets(list(study.ks))
        per_layer: dict[str, int] = {}
        for fs in sets:
            per_layer[fs.layer] = per_layer.get(fs.layer, 0) + 1
        shapes = plan.FitShapes(
            rows=np.unique(used).size,
            n_train=n_available,
            n_eval=eval_stimuli.size,
            voxels=resp.train.responses.shape[1],
            draws=[size for size, _ in study.draws],
            widths=[fs.width for fs in sets],
            n_alphas=len(study.alphas),
            n_folds=study.n_folds,
            map_values=max((m.channels * m.height * m.width for m in features.maps), default=0),
            ks_per_layer=max(per_layer.values(), default=1),
        )
    return plan.peak_bytes(shapes)


# --- report -------------------------------------------------------------------------------


def header(study: Study, args: argparse.Namespace) -> str:
    """Shapes, versions, threads and BLAS settings."""
    s = study.shapes
    widths = [s.channels * k * k for k in study.ks]
    env = ", ".join(f"{var}={os.environ.get(var, '(unset)')}" for var in THREAD_VARS)
    lines = [
        f"subject: {s.n_images} images ({s.n_test} test), {s.voxels} voxels; model: {s.layers} "
        f"layers × {s.channels} channels on a {s.side}×{s.side} map (planted k {s.planted_ks})",
        f"fits: sizes {list(study.sizes)} × seeds {list(study.seeds)} = {len(study.draws)} "
        f"draws, {study.n_folds} seeded folds, {len(study.alphas)} penalties "
        f"[{study.alphas[0]:.3g}..{study.alphas[-1]:.3g}], scoring r",
        f"sets: {s.layers * len(study.ks)} = {s.layers} layers × k {list(study.ks)} (k={s.side}: "
        f"the full map), widths {widths}",
        f"python {platform.python_version()}, numpy {np.__version__}, torch {torch.__version__} "
        f"threads={torch.get_num_threads()} interop={torch.get_num_interop_threads()} "
        f"mkldnn={torch.backends.mkldnn.is_available()} cuda={torch.cuda.is_available()}, "
        f"h5py {h5py.__version__}, cpus={os.cpu_count()}",
        f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}, {env}",
        f"device={args.device}, himalaya backend={args.himalaya_backend}, "
        f"repeats={args.repeats}, each after one warm-up on a tiny subject",
    ]
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "\n".join(lines)
    for pool in threadpool_info():
        arch = pool.get("architecture") or "-"
        lines.append(
            f"  {pool['internal_api']} {pool.get('version') or ''} arch={arch} "
            f"threads={pool['num_threads']}: {os.path.basename(pool['filepath'])}"
        )
    return "\n".join(lines)


def spread(seconds: list[float]) -> str:
    if len(seconds) == 1:
        return f"{seconds[0]:.2f}"
    return f"{min(seconds):.2f}/{statistics.median(seconds):.2f}/{max(seconds):.2f}"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller subject (< 2 min)")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per method (1)")
    parser.add_argument("--device", default="cpu", help="encscale's device (cpu, cuda)")
    parser.add_argument(
        "--himalaya-backend", default=None, help="torch (default), numpy, torch_cuda (with cuda)"
    )
    parser.add_argument(
        "--methods",
        default=None,
        help=f"comma-separated subset of {','.join(METHODS)} (default: all; store-none only "
        "with --model)",
    )
    parser.add_argument(
        "--model",
        default=None,
        help="a timm ViT (e.g. vit_tiny_patch16_224) whose maps the subject has; adds store-none",
    )
    parser.add_argument(
        "--sizes", default=None, help="comma-separated training sizes instead of the shape's"
    )
    parser.add_argument(
        "--verbose", action="store_true", help="progress within each method, on stderr"
    )
    parser.add_argument(
        "--subject",
        default=None,
        help="keep the synthetic subject in this folder and reuse it when it is there",
    )
    args = parser.parse_args()
    if args.himalaya_backend is None:
        args.himalaya_backend = "torch_cuda" if args.device.startswith("cuda") else "torch"
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.methods is None:
        args.methods = ",".join(m for m in METHODS if args.model or m != "store-none")
    args.methods = [name.strip() for name in args.methods.split(",")]
    unknown = sorted(set(args.methods) - set(METHODS))
    if unknown:
        parser.error(f"unknown --methods {unknown}; choose from {', '.join(METHODS)}")
    if "store-none" in args.methods and not args.model:
        parser.error("--methods store-none needs --model: the maps must come from a model")
    return args


def vit_spec(model: str, shapes: SubjectShapes) -> dict:
    """A timm ViT with seeded random weights, patch 16, whose block maps have ``shapes``."""
    heads = next(h for h in (3, 2, 1) if shapes.channels % h == 0)
    side = 16 * shapes.side
    kwargs = dict(depth=shapes.layers, embed_dim=shapes.channels, num_heads=heads, img_size=side)
    return {"timm": model, "weights": "random", "seed": 0, "input_size": side, "kwargs": kwargs}


def model_subject_files(directory: Path, shapes: SubjectShapes, model: str) -> Files:
    """A subject whose maps ``model`` computes (:func:`write_model_subject`), written anew."""
    spec = vit_spec(model, shapes)
    stimuli, features, responses, truth = write_model_subject(directory, shapes, model, spec)
    return Files(
        str(features), str(responses), str(stimuli), model, spec, float(truth["extract_s"])
    )


def subject_files(directory: Path, shapes: SubjectShapes) -> Files:
    """The synthetic subject in ``directory``: reused if its shapes match, else written."""
    features, responses = directory / "features.h5", directory / "responses.h5"
    if features.exists() and responses.exists():
        resp = read_responses(responses, ["test"])
        with open_features(features) as f:
            found = (f.n_stimuli, len(f.maps), f.maps[0].channels, f.maps[0].height)
        found += (len(resp.test.stimulus), resp.test.responses.shape[1])
        wanted = (shapes.n_images, shapes.layers, shapes.channels, shapes.side)
        if found == (*wanted, shapes.n_test, shapes.voxels):
            print(f"synthetic subject reused from {directory}", flush=True)
            return Files(str(features), str(responses))
    start = time.perf_counter()
    write_synthetic_subject(directory, shapes)
    print(
        f"synthetic subject written in {time.perf_counter() - start:.1f} s (features "
        f"{os.path.getsize(features) / 2**20:.0f} MB, float16)",
        flush=True,
    )
    return Files(str(features), str(responses))


def main() -> None:
    args = parse_args()
    study = QUICK if args.quick else FULL
    if args.sizes:
        study = dataclasses.replace(study, sizes=tuple(int(n) for n in args.sizes.split(",")))
    print(header(study, args), flush=True)
    spawn = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="bench_study_") as tmp:
        subject = Path(args.subject or Path(tmp) / "subject")
        if args.model:
            files = model_subject_files(subject, study.shapes, args.model)
            warm = model_subject_files(Path(tmp) / "warm-up", WARM_UP.shapes, args.model)
            print(
                f"subject's maps: {args.model} (random weights), extracted in "
                f"{files.extract_s:.1f} s, features file "
                f"{os.path.getsize(files.features) / 2**20:.0f} MB (float32)",
                flush=True,
            )
        else:
            files = subject_files(subject, study.shapes)
            features, responses, _ = write_synthetic_subject(Path(tmp) / "warm-up", WARM_UP.shapes)
            warm = Files(str(features), str(responses))
        results, choices, loads = {}, {}, []
        for name in [name for name in METHODS if name in args.methods]:
            load = os.getloadavg()[0]
            out = Path(tmp) / name
            with concurrent.futures.ProcessPoolExecutor(1, mp_context=spawn) as pool:
                results[name] = pool.submit(
                    measure_method,
                    name,
                    study,
                    files,
                    warm,
                    str(out),
                    args.repeats,
                    args.device,
                    args.himalaya_backend,
                    args.verbose,
                ).result()
            choices[name] = read_choices(name, study, out / "fits")
            loads += [load, os.getloadavg()[0]]
            print(
                f"   done: {name} ({spread(results[name]['seconds'])} s; load average "
                f"{load:.2f} before, {os.getloadavg()[0]:.2f} after)",
                flush=True,
            )
        peak_declared = declared_peak(study, files)
        store = compare_stores(study, files, Path(tmp)) if "store-none" in results else None
    if max(loads) > (os.cpu_count() or 1) + 0.5:
        print(
            f"WARNING: load average up to {max(loads):.2f} on {os.cpu_count()} CPUs: other "
            "processes competed for the CPUs; timings are inflated and uneven"
        )
    report(study, args, results, choices, peak_declared, store)


def report(
    study: Study,
    args: argparse.Namespace,
    results: dict[str, dict],
    choices: dict[str, dict],
    peak_declared: int,
    store: dict | None = None,
) -> None:
    """The table, the agreement of per-fit and new job, memory, the file route against
    store-none, targets, speedups."""
    mb = 2**20
    n_sets = study.shapes.layers * len(study.ks)
    labels = {
        "per-fit": f"per-fit: fit_encoding × {len(study.draws)}",
        "new-job": "new job: fit_subject_model × 1",
        "himalaya": f"himalaya ({args.himalaya_backend}): {n_sets} sets × "
        f"{len(study.draws)} draws + argmax",
        "store-none": "store none: fit_subject_model × 1, the model",
    }
    print(
        f"\n{'method':46s} {'wall_s min/med/max':>20s} {'read_MB':>8s} {'peak_RSS_MB':>11s} "
        f"{'test_r':>7s}  vs himalaya: same (set,α)  same set  max|Δr|  mean|Δr|"
    )
    for name, res in results.items():
        test_r = np.mean([c.test_r.mean() for c in choices[name].values()])
        versus = "(reference)" if name == "himalaya" else "-"
        if name != "himalaya" and "himalaya" in choices:
            agree = compare(choices[name], choices["himalaya"])
            versus = (
                f"{100 * agree.same_pair:25.2f}% {100 * agree.same_set:8.2f}% "
                f"{agree.max_dr:8.2e} {agree.mean_dr:9.2e}"
            )
        print(
            f"{labels[name]:46s} {spread(res['seconds']):>20s} "
            f"{sum(res['read'].values()) / mb:8.0f} {res['peak_rss'] / mb:11.0f} "
            f"{test_r:7.4f}  {versus}"
        )
    for name, res in results.items():
        read = ", ".join(f"{kind} {b / mb:.1f} MB" for kind, b in res["read"].items() if b)
        extra = f", CUDA peak {res['cuda_peak'] / mb:.0f} MB" if "cuda_peak" in res else ""
        reset = "reset after warm-up" if res["peak_reset"] else "not reset: ru_maxrss/VmHWM"
        start = "?" if res["start_rss"] is None else f"{res['start_rss'] / mb:.0f}"
        print(
            f"  {name}: read {read}; RSS {start} MB after the warm-up, peak ({reset}) "
            f"{res['peak_rss'] / mb:.0f} MB{extra}; torch threads {res['torch_threads']}"
        )
    wall = {name: statistics.median(res["seconds"]) for name, res in results.items()}
    read = {name: sum(res["read"].values()) for name, res in results.items()}
    nan = float("nan")
    vs_per_fit, vs_himalaya, read_ratio = nan, nan, nan
    targets = []
    if "new-job" in results:
        routes = results["new-job"]["info"].get("routes", {})
        kernel = sorted({n.split("/")[1] for n, r in routes.items() if r == "kernel"})
        primal = sorted({n.split("/")[1] for n, r in routes.items() if r == "primal"})
        print(f"  new job routes: kernel {kernel or '-'}, primal {primal or '-'}")
        print(
            f"new job memory: declared (plan.peak_bytes) {peak_declared / mb:.0f} MB, "
            f"measured peak RSS {results['new-job']['peak_rss'] / mb:.0f} MB"
        )
    if "new-job" in results and "per-fit" in results:
        agree = compare(choices["per-fit"], choices["new-job"])
        share, dr = agree.same_pair, agree.max_dr_same
        print(
            f"per-fit vs new job: same (set, penalty) {100 * share:.2f} % (lowest draw "
            f"{agree.worst}); max |Δ test r| {dr:.2e} where the (set, penalty) is the same, "
            f"{agree.max_dr:.2e} over all voxels"
        )
        vs_per_fit = wall["per-fit"] / wall["new-job"]
        read_ratio = read["per-fit"] / max(read["new-job"], 1)
        targets += [
            ("wall vs per-fit ≥ 3x", f"{vs_per_fit:.2f}x", vs_per_fit >= 3),
            ("bytes read vs per-fit ≥ 4x fewer", f"{read_ratio:.1f}x", read_ratio >= 4),
            ("same (set, penalty) as per-fit ≥ 99 %", f"{100 * share:.2f} %", share >= 0.99),
            ("test r within 1e-5 of per-fit (same choice)", f"{dr:.1e}", dr <= 1e-5),
        ]
    if store is not None and "new-job" in results:
        agree = compare(choices["store-none"], choices["new-job"])
        t_file = store["extract_s"] + wall["new-job"]
        print(
            f"features file vs store none: file = extraction "
            f"{store['extract_s']:.1f} s + new job {wall['new-job']:.1f} s = "
            f"{t_file:.1f} s, disk {store['features_bytes'] / mb:.0f} MB features + "
            f"{store['fits_bytes'] / mb:.0f} MB fits; none = {wall['store-none']:.1f} s "
            f"({results['store-none']['info']['passes']} forward passes), disk 0 MB features + "
            f"{store['fits_bytes'] / mb:.0f} MB fits; ratio none / file "
            f"{wall['store-none'] / t_file:.2f}"
        )
        print(
            f"store none vs features file: same (set, penalty) {100 * agree.same_pair:.4f} % of "
            f"(draw, voxel); largest |Δ test prediction| / largest prediction "
            f"{store['max_dpred']:.2e}"
        )
        same = agree.same_pair == 1.0 and store["max_dpred"] <= 1e-5
        targets.append(("store none: identical fits", "yes" if same else "no", same))
    if "new-job" in results and "himalaya" in results:
        vs_himalaya = wall["himalaya"] / wall["new-job"]
        targets.append(("wall vs himalaya ≥ 10x", f"{vs_himalaya:.2f}x", vs_himalaya >= 10))
    if targets:
        print(
            "targets (new job): "
            + "; ".join(f"{what}: {got} {'met' if ok else 'MISSED'}" for what, got, ok in targets)
        )
    print(f"study_speedup_vs_himalaya={vs_himalaya:.2f}")
    print(f"study_speedup_vs_per_fit={vs_per_fit:.2f}")


if __name__ == "__main__":
    sys.exit(main())
