"""Throughput of the GPT-2 training step (encscale.video.gpt.train_gpt) in fp32, tf32, bf16, fp16.

The same model, data and steps in each precision, in one process: synthetic clips' codes
from a sparse random Markov chain over the codebook (so the loss can fall and the final
validation losses can be compared), trained with AdamW, the cosine schedule and clipping.
Reports per precision: tokens/s (median over logging windows after the first, which holds
the warm-up), ms per step, wall time, peak memory, final validation loss, and model FLOP
utilisation: (6·N + 12·layers·context·width) FLOPs per token (Kaplan et al.; PaLM's MFU)
× tokens/s over the matrix-product rate measured here, in that precision (fp32 with TF32
off, tf32 with it on, as training runs them: ``encscale.torchtools.autocast``). A second
fp32 run with another seed gives the seed-to-seed spread of the validation loss ("noise").
Last lines: ``bf16_over_tf32=<x.xx>`` where both ran, then ``bf16_speedup=<x.xx>`` (tokens/s
over fp32, TF32 off: the comparison of the study's 1.17×).

    python benchmarks/bench_training.py                     # small, CPU, < 1 min
    python benchmarks/bench_training.py --device cuda --width 768 --layers 12 --heads 12 \
        --codes 1024 --n-codes 2048 --batch 16 --steps 300
"""

from __future__ import annotations

import argparse
import os
import time
from contextlib import nullcontext

import numpy as np
import torch

from encscale.torchtools import PRECISIONS, autocast, count_parameters
from encscale.video.gpt import GPTSpec, TrainSettings, build_gpt, train_gpt


def markov_codes(n: int, length: int, n_codes: int, seed: int, fanout: int = 4) -> np.ndarray:
    """(n, length) int16 sequences of a random Markov chain: each code has ``fanout`` likely
    successors (entropy ≈ log(fanout) nats per code once learnt)."""
    rng = np.random.default_rng(seed)
    successors = rng.integers(0, n_codes, (n_codes, fanout))
    out = np.empty((n, length), dtype=np.int16)
    out[:, 0] = rng.integers(0, n_codes, n)
    for t in range(1, length):
        out[:, t] = successors[out[:, t - 1], rng.integers(0, fanout, n)]
    return out


def matmul_rate(dtype: torch.dtype, device: str, size: int, repeats: int = 10) -> float:
    """Measured FLOP/s of a size³ matrix product in ``dtype`` on random data."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(repeats):
        a @ b
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return 2 * size**3 * repeats / (time.perf_counter() - t0)


def run(args: argparse.Namespace, precision: str, seed: int, train, val) -> dict:
    spec = GPTSpec(args.width, args.layers, args.heads, args.codes + 1, args.n_codes)
    settings = TrainSettings(
        n_samples=args.steps * args.batch,
        batch_size=args.batch,
        lr=args.lr,
        precision=precision,
        seed=seed,
        log_every=args.log_every,
        checkpoint_every=10**9,
    )
    model = build_gpt(spec, seed=seed).to(args.device)
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    rows = train_gpt(model, train, {"heldout": val}, spec, settings)
    wall = time.perf_counter() - t0
    rates = np.array([r["tokens_per_s"] for r in rows[1:]] or [rows[0]["tokens_per_s"]])
    n_params = count_parameters(model)
    flops_per_token = 6 * n_params + 12 * args.layers * spec.context * args.width
    return dict(
        precision=precision,
        seed=seed,
        tokens_per_s=float(np.median(rates)),
        ms_per_step=1e3 * args.batch * args.codes / float(np.median(rates)),
        wall_s=wall,
        peak_mem_mb=rows[-1]["peak_mem_mb"],
        val_loss=rows[-1]["val_loss_heldout"],
        loss=rows[-1]["loss"],
        n_params=n_params,
        model_flops_per_s=flops_per_token * float(np.median(rates)),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--codes", type=int, default=256, help="codes per clip (sequence - 1)")
    parser.add_argument("--n-codes", type=int, default=64, help="codebook size")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--log-every", type=int, default=10)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--precisions", nargs="+", default=["fp32", "tf32", "bf16", "fp16"])
    parser.add_argument("--matmul-size", type=int, default=None)
    args = parser.parse_args()
    cuda = args.device.startswith("cuda")

    print(f"device: {torch.cuda.get_device_name() if cuda else 'cpu'}; torch {torch.__version__}")
    print(
        f"threads {torch.get_num_threads()}, OPENBLAS_CORETYPE="
        f"{os.environ.get('OPENBLAS_CORETYPE', 'unset')}, OMP_NUM_THREADS="
        f"{os.environ.get('OMP_NUM_THREADS', 'unset')}"
    )
    size = args.matmul_size or (8192 if cuda else 1024)
    rates = {}
    for p in args.precisions:
        with autocast(args.device, p) if p in ("fp32", "tf32") else nullcontext():
            rates[p] = matmul_rate(PRECISIONS[p], args.device, size)
    print(
        f"matrix product {size}³: "
        + ", ".join(f"{p} {r / 1e12:.1f} TFLOP/s" for p, r in rates.items())
    )

    n_train = args.steps * args.batch
    codes = markov_codes(n_train + 4 * args.batch, args.codes, args.n_codes, seed=0)
    val, train = codes[: 4 * args.batch], codes[4 * args.batch :]
    print(
        f"GPT-2 width {args.width}, {args.layers} layers, {args.heads} heads, {args.codes} codes "
        f"of {args.n_codes}, batch {args.batch}, {args.steps} steps"
    )
    results = [run(args, p, 0, train, val) for p in args.precisions]
    noise = run(args, "fp32", 1, train, val) if "fp32" in args.precisions else None

    header = f"{'precision':<10}{'tokens/s':>12}{'ms/step':>10}{'wall_s':>9}{'peak_MB':>10}"
    print(header + f"{'val_loss':>10}{'MFU':>8}")
    for r in results:
        mfu = r["model_flops_per_s"] / rates[r["precision"]]
        print(
            f"{r['precision']:<10}{r['tokens_per_s']:>12.0f}{r['ms_per_step']:>10.1f}"
            f"{r['wall_s']:>9.1f}{r['peak_mem_mb']:>10.0f}{r['val_loss']:>10.4f}{mfu:>8.1%}"
        )
    print(f"parameters: {results[0]['n_params']:,}")
    if noise is not None:
        spread = abs(noise["val_loss"] - results[0]["val_loss"])
        print(f"fp32 seed 1: val_loss {noise['val_loss']:.4f} (seed-to-seed spread {spread:.4f})")
    by = {r["precision"]: r for r in results}
    if "fp16" in by and "fp32" in by:
        print(f"fp16_speedup={by['fp16']['tokens_per_s'] / by['fp32']['tokens_per_s']:.2f}")
    if "bf16" in by and "tf32" in by:
        print(f"bf16_over_tf32={by['bf16']['tokens_per_s'] / by['tf32']['tokens_per_s']:.2f}")
    if "bf16" in by and "fp32" in by:  # the study's comparison, last
        print(f"bf16_speedup={by['bf16']['tokens_per_s'] / by['fp32']['tokens_per_s']:.2f}")


if __name__ == "__main__":
    main()
