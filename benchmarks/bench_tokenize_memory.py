"""Peak memory of encoding the GPT-2's pre-training clips (rule tokenize_clips) against the
number of clips: the codes streamed to the file (encscale.video.tokenizer.
tokenize_pretraining_clips) against all of them held in memory (encscale.video.clips.
encode_clips, the former route), each in a fresh process (its resident peak, VmHWM), on CPU.

The movies are synthetic (``--movies`` of ``--seconds`` at 8 frames/s, ``--size`` px, ffv1)
and the tokenizer tiny and without downsampling, so that a clip's codes are large for its
cost to read and encode (2 frames of 32 × 32: 2048 codes, 4 kB per clip), as the study's
(4 × 16 × 16: 2 kB per clip of 16 × 64 × 64) are. The codes' buffer is ``--buffer-mb``
(small, so that both sizes spill to scratch as the study's 6M clips do with 256 MB). Prints a
line per route and size, then ``ratio=<x.xx>``: the streamed route's peak at the largest
size over its peak at the smallest (1.00: memory does not grow with the clips).

    python benchmarks/bench_tokenize_memory.py                    # 10k and 100k clips
    python benchmarks/bench_tokenize_memory.py --clips 2000 20000 --routes streamed
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np

# One measurement in a fresh interpreter: imports first (their memory is the baseline both
# routes share), then the route; prints its peak RSS, the baseline and the time.
CHILD = textwrap.dedent(
    """
    import json, sys, time
    import numpy as np, pandas as pd, torch, h5py
    from encscale.jobs import peak_rss_bytes
    from encscale.video import clips as C
    from encscale.video.budget import tokenize_peak_bytes
    from encscale.video.tokenizer import tokenize_pretraining_clips
    from encscale.video.vqvae import load_checkpoint

    torch.set_num_threads(1)

    root, route, n, buffer_mb = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    spec = json.loads(open(f"{root}/spec.json").read())
    movies, clip = spec["movies"], spec["clip"]
    before = peak_rss_bytes()
    start = time.perf_counter()
    if route == "streamed":
        tokenize_pretraining_clips(
            movies, f"{root}/vqvae.pt", f"{root}/streamed_{n}.h5", n=n, clip=clip, seed=0,
            batch_size=256, buffer_bytes=int(buffer_mb * 2**20),
        )
    else:  # the former route: every code in memory, then written
        model = load_checkpoint(f"{root}/vqvae.pt")
        window = C.clip_seconds(clip["frames"], clip["fps"])
        table = C.training_clip_starts(C.movie_durations(movies), n, window, 0)
        codes = C.encode_clips(model, movies, table, **clip, batch_size=256)
        with h5py.File(f"{root}/in_memory_{n}.h5", "w") as h5:
            h5["codes"] = codes
            h5["movie"] = table["movie"].to_numpy(dtype="S")
            h5["start_s"] = table["start_s"].to_numpy(dtype=np.float64)
    seconds = time.perf_counter() - start
    peak = peak_rss_bytes()
    bound = tokenize_peak_bytes(
        n=n, n_movies=len(movies), clip=clip, tokenizer=spec["tokenizer"], batch_size=256,
        device="cpu", buffer_bytes=int(buffer_mb * 2**20),
    )
    print(json.dumps(dict(peak=peak, baseline=before, seconds=seconds, bound=bound)))
    """
)

TOKENIZER = dict(
    channels=1, n_codes=2, code_dim=1, downsample=[1, 1, 1], n_res_blocks=0, attention="none"
)


def make_inputs(root: Path, n_movies: int, seconds: float, size: int, frames: int) -> None:
    """Synthetic movies, a tiny tokenizer (random codebook) and spec.json naming them."""
    import torch

    from encscale.video.decode import write_video
    from encscale.video.vqvae import VQVAE, VQVAEConfig, save_checkpoint

    rng = np.random.default_rng(0)
    fps = 8.0
    movies = {}
    for i in range(n_movies):
        path = root / f"movie{i:02d}.mkv"
        n_frames = int(seconds * fps)
        y, x = np.mgrid[:size, :size]
        phase = rng.random(3) * 6
        t = np.arange(n_frames)[:, None, None, None]
        wave = np.sin(x[..., None] / 5 + y[..., None] / 7 + t / 3 + phase)
        write_video(path, (128 + 100 * wave).astype(np.uint8), fps, codec="ffv1")
        movies[path.stem] = str(path)
    torch.manual_seed(0)
    model = VQVAE(VQVAEConfig(**{**TOKENIZER, "downsample": tuple(TOKENIZER["downsample"])}))
    model.codebook.embeddings.normal_()
    model.codebook.initialised.fill_(True)
    save_checkpoint(model.eval(), root / "vqvae.pt")
    clip = dict(frames=frames, fps=fps, size=size)
    (root / "spec.json").write_text(json.dumps(dict(movies=movies, clip=clip, tokenizer=TOKENIZER)))


def measure(root: Path, route: str, n: int, buffer_mb: float) -> dict:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[1] / "src"))
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(root), route, str(n), str(buffer_mb)],
        capture_output=True,
        text=True,
        env=env,
    )
    if out.returncode:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--routes", nargs="+", default=["streamed", "in-memory"])
    parser.add_argument("--movies", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=120.0, help="per movie")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--frames", type=int, default=2, help="per clip")
    parser.add_argument("--buffer-mb", type=float, default=16.0)
    args = parser.parse_args()
    mb = 2**20
    peaks: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_inputs(root, args.movies, args.seconds, args.size, args.frames)
        code_kb = args.frames * args.size**2 * 2 / 1024
        print(
            f"{args.movies} movies of {args.seconds:g} s, clips of {args.frames} × {args.size}²"
            f" px, codes {code_kb:g} kB/clip, buffer {args.buffer_mb:g} MB, cores={os.cpu_count()}"
        )
        for route in args.routes:
            for n in args.clips:
                r = measure(root, route, n, args.buffer_mb)
                peaks.setdefault(route, []).append(r["peak"] / mb)
                print(
                    f"{route:>9} n={n:>7}: peak {r['peak'] / mb:7.1f} MB (after imports "
                    f"{r['baseline'] / mb:.1f} MB, estimate {r['bound'] / mb:.1f} MB), "
                    f"codes {n * code_kb / 1024:7.1f} MB, {r['seconds']:.1f} s"
                )
    for route, values in peaks.items():
        if len(values) > 1:
            print(
                f"{route}: peak at n={args.clips[-1]} / n={args.clips[0]} = "
                f"{values[-1] / values[0]:.2f}"
            )
    if "streamed" in peaks:
        print(f"ratio={peaks['streamed'][-1] / peaks['streamed'][0]:.2f}")


if __name__ == "__main__":
    main()
