"""Images/s of a model's raw forward pass vs encscale's full extraction path, same model.

    python benchmarks/bench_features.py [--model eva02_base_patch14_224] [--batch 64]
        [--precision bf16] [--device cuda] [--images 1024] [--quick]

Raw: ``model.forward_features`` on a batch already normalised on the device, under
``torch.inference_mode`` and autocast to ``--precision`` — no hooks, no reading or
writing. Full: :func:`encscale.vision.extract.extract_features` on a ``stimuli.h5`` of
the same number of images stored at 425 px (NSD's size, so resizing is included), every
block's map written to HDF5 (pooling happens at fit time). Random weights (timing only).
Both rates exclude building the model. The last line is ``extraction_efficiency=<full/raw>``.
``--quick`` runs a toy EVA-02 on 64 images on the CPU in seconds.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch

from encscale.torchtools import PRECISIONS, autocast, count_parameters
from encscale.vision.extract import extract_features
from encscale.vision.registry import build_model, input_spec

QUICK_KWARGS = {"img_size": 112, "depth": 4, "embed_dim": 96, "num_heads": 2}


def raw_forward_rate(model, size: int, args: argparse.Namespace) -> float:
    """Images/s of forward_features on normalised batches already on the device."""
    x = torch.randn(args.batch, 3, size, size, device=args.device)
    n_batches = max(1, args.images // args.batch)
    with torch.inference_mode(), autocast(args.device, args.precision):
        model.forward_features(x)  # warm-up
        synchronize(args.device)
        start = time.perf_counter()
        for _ in range(n_batches):
            model.forward_features(x)
        synchronize(args.device)
    return n_batches * args.batch / (time.perf_counter() - start)


def synchronize(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="eva02_base_patch14_224", help="timm name")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--precision", choices=sorted(PRECISIONS), default="bf16")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="toy EVA-02, 64 images, CPU")
    args = parser.parse_args()
    kwargs = {}
    if args.quick:
        args.model, args.device, args.precision = "eva02_tiny_patch14_224", "cpu", "fp32"
        args.images, args.batch, args.workers, kwargs = 64, 16, 1, QUICK_KWARGS
    spec = {"timm": args.model, "kwargs": kwargs, "seed": 0}
    model = build_model(spec).to(args.device)
    size = input_spec(model, spec).size
    print(
        f"model {args.model} ({count_parameters(model) / 1e6:.1f} M parameters, input {size} px), "
        f"device {args.device}, precision {args.precision}, batch {args.batch}, "
        f"{args.images} images, torch {torch.__version__}, "
        f"threads {torch.get_num_threads()}"
    )
    raw = raw_forward_rate(model, size, args)
    with tempfile.TemporaryDirectory() as tmp:
        stimuli = Path(tmp) / "stimuli.h5"
        rng = np.random.default_rng(0)
        with h5py.File(stimuli, "w") as f:
            f["images"] = rng.integers(0, 256, (args.images, 425, 425, 3), dtype=np.uint8)
        full = extract_features(
            stimuli, Path(tmp) / "features.h5", args.model, spec,
            batch_size=args.batch, device=args.device, precision=args.precision,
            num_workers=args.workers, progress=lambda _: None,
        )  # fmt: skip
    print(f"{'path':40s} {'images/s':>10s}")
    print(f"{'raw forward_features (no hooks, no I/O)':40s} {raw:10.1f}")
    print(f"{'full extraction (read, model, write)':40s} {full:10.1f}")
    print(f"extraction_efficiency={full / raw:.2f}")


if __name__ == "__main__":
    main()
