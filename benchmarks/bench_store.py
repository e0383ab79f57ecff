"""Benchmark one subject × model's fits with a features file and without one
(``features.store: none``) on a simulated subject, and check that they agree.

    python benchmarks/bench_store.py [--model vit_small_patch16_224] [--images 900]
                                     [--group-mb 64] [--device cpu] [--batch-size 32]

The subject is the NSD simulator's (``encscale.simulate.nsd``: one subject, 64 px images,
its noise-ceiling SNRs and ROI volumes) prepared as the workflow prepares it; the model is
a timm model with seeded random weights at 64 px, every block's map kept (float32), k in
1, 2, 4 and the full map, 13 penalties, sizes 200 and the whole training pool × 2 draws.

    file   extract_features (the whole stimuli.h5) + fit_subject_model from the file
    none   fit_subject_model running the model itself (ModelMaps), layers in groups of
           ``--group-mb`` MB: one forward pass per group, as deep as the group's deepest layer

Printed: wall time of each step, the disk each route wrote besides the fits (the features
file; nothing for none), the forward passes, and over every (draw, voxel) the share with the
same set and penalty and the largest |Δ test prediction| relative to the largest prediction.
BLAS: whatever this machine's numpy/torch use (``OPENBLAS_CORETYPE`` and threads as set);
both routes run in this process, one after the other, with the same settings.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from encscale.contracts import read_fit
from encscale.data.prepare import prepare_stimuli, prepare_subject
from encscale.encoding.subject import fit_subject_model
from encscale.simulate.nsd import simulate_nsd
from encscale.vision.extract import extract_features
from encscale.vision.live import ModelMaps

POOL = [1, 2, 4, 16]
ALPHAS = np.logspace(-1, 5, 13)


def simulate(base: Path, n_images: int) -> None:
    """One simulated subject prepared to stimuli.h5 and responses (its hidden model tiny)."""
    params = dict(
        seed=0,
        n_subjects=1,
        n_shared=n_images // 6,
        n_unique=n_images - n_images // 6,
        n_repeats=3,
        trials_per_session=750,
        image_size=64,
        volume_shape=[24, 24, 20],
        snr_range=[0.3, 3.0],
        hidden_model={
            "timm": "convnext_atto",
            "kwargs": {"dims": [16, 32, 64, 128], "depths": [1, 1, 2, 1], "ls_init_value": 1.0},
            "seed": 0,
            "input_size": 64,
        },
    )
    simulate_nsd(base / "raw", params)
    prepare_stimuli(base / "raw", ["subj01"], base / "stimuli.h5")
    prepare_subject(base / "raw", "subj01", base / "stimuli.h5", base / "subj01.h5")


def fits(base: Path, source, out: Path, sizes: list[int], device: str) -> dict:
    out.mkdir()
    paths = {(n, s): out / f"n{n}_s{s}.h5" for n in sizes for s in (0, 1)}
    fit_subject_model(
        base / "subj01.h5", source, paths, n_folds=5, alphas=ALPHAS, pool_sizes=POOL,
        device=device, progress=lambda _: None,
    )  # fmt: skip
    parts = ["best_set", "best_alpha", "test_pred"]
    return {key: read_fit(path, parts) for key, path in paths.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="vit_small_patch16_224")
    parser.add_argument("--images", type=int, default=900)
    parser.add_argument("--group-mb", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    spec = {"timm": args.model, "weights": "random", "seed": 0, "input_size": 64}
    if args.model.startswith("vit") or args.model.startswith("eva"):
        spec["kwargs"] = {"img_size": 64}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        simulate(base, args.images)
        n_train = args.images - args.images // 6
        sizes = [200, n_train]
        print(f"{args.model} (random weights, 64 px), {args.images} images, device {args.device}")
        print(f"torch threads {torch.get_num_threads()}; sizes {sizes} × 2 draws, k {POOL}")

        t0 = time.perf_counter()
        features = base / "features.h5"
        extract_features(
            base / "stimuli.h5", features, args.model, spec,
            batch_size=args.batch_size, device=args.device,
        )  # fmt: skip
        t_extract = time.perf_counter() - t0
        t0 = time.perf_counter()
        stored = fits(base, features, base / "file", sizes, args.device)
        t_file = time.perf_counter() - t0

        t0 = time.perf_counter()
        maps = ModelMaps(
            base / "stimuli.h5", args.model, spec, batch_size=args.batch_size,
            device=args.device, max_bytes=args.group_mb * 2**20,
        )  # fmt: skip
        live = fits(base, maps, base / "none", sizes, args.device)
        t_none = time.perf_counter() - t0

        same, worst = [], 0.0
        for key, ref in stored.items():
            got = live[key]
            same.append((got.best_set == ref.best_set) & (got.best_alpha == ref.best_alpha))
            scale = float(np.abs(ref.test_pred).max())
            worst = max(worst, float(np.abs(got.test_pred - ref.test_pred).max()) / scale)
        t_both = t_extract + t_file
        print(f"file: extraction {t_extract:.1f} s + fits {t_file:.1f} s = {t_both:.1f} s; "
              f"features file {features.stat().st_size / 2**20:.1f} MiB")  # fmt: skip
        print(f"none: fits running the model {t_none:.1f} s; {maps.passes} forward passes "
              f"(groups of {args.group_mb} MB); features file 0 MiB")  # fmt: skip
        print(f"ratio none / file: {t_none / t_both:.2f}")
        print(f"same set and penalty: {np.concatenate(same).mean():.4%} of (draw, voxel); "
              f"largest |Δ test prediction| / largest prediction: {worst:.2e}")  # fmt: skip


if __name__ == "__main__":
    main()
