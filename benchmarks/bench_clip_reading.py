"""Reading many random training clips from a movie: one pass (encscale.video.clips.read_clips,
built on encscale.video.decode.iter_windows) against a seek and decode per clip (read_frames on
each clip, the way a per-sample data loader reads them), on the same clips in one run.

The movie is synthetic, written here with libx264 (H.264 with its default GOP, as the
CNeuroMod release's .mkv files are): smooth colour waves and moving bars at ``--width`` ×
``--height``, ``--fps`` frames/s, ``--seconds`` long. Both readers must return the same
clips (checked); the last line is ``speedup=<x.xx>`` (per-clip time over one-pass time).

    python benchmarks/bench_clip_reading.py                       # 640 × 360, 2 min, 400 clips
    python benchmarks/bench_clip_reading.py --clips 2000 --seconds 600
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from encscale.video.clips import clip_seconds, read_clips, training_clip_starts
from encscale.video.decode import read_frames, write_video
from encscale.video.vqvae import clip_from_frames


def synthetic_movie(n: int, height: int, width: int) -> np.ndarray:
    """(n, height, width, 3) uint8: drifting colour waves with a bar sweeping across."""
    y, x = np.mgrid[:height, :width].astype(np.float32)
    out = np.empty((n, height, width, 3), dtype=np.uint8)
    for t in range(n):
        wave = np.sin(x[..., None] / 37 + y[..., None] / 23 + t / 15 + np.array([0, 2, 4]))
        frame = 128 + 80 * wave
        bar = (x + 7 * t) % width < width / 10
        frame[bar] = 255 - frame[bar]
        out[t] = frame.astype(np.uint8)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--fps", type=float, default=30.0, help="of the movie")
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--clips", type=int, default=400)
    parser.add_argument("--frames", type=int, default=16, help="per clip")
    parser.add_argument("--clip-fps", type=float, default=10.0)
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()
    print(f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '')}, cores={os.cpu_count()}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "movie.mkv"
        n_frames = int(args.seconds * args.fps)
        write_video(path, synthetic_movie(n_frames, args.height, args.width), args.fps)
        print(f"movie: {args.width}×{args.height}, {args.fps:g} fps, {args.seconds:g} s (H.264)")
        window = clip_seconds(args.frames, args.clip_fps)
        table = training_clip_starts({"movie": args.seconds}, args.clips, window, seed=0)
        paths = {"movie": path}
        clip = (args.frames, args.clip_fps, args.size)

        t0 = time.perf_counter()
        per_clip = np.stack(
            [
                clip_from_frames(read_frames(path, s, s + window, args.clip_fps, args.size))
                for s in table["start_s"]
            ]
        )
        t_per_clip = time.perf_counter() - t0

        t0 = time.perf_counter()
        one_pass = read_clips(paths, table, *clip)
        t_one_pass = time.perf_counter() - t0

    np.testing.assert_array_equal(one_pass, per_clip)
    print(f"{args.clips} clips of {args.frames} frames at {args.clip_fps:g} fps, {args.size} px")
    print(f"seek per clip : {t_per_clip:8.2f} s  ({args.clips / t_per_clip:7.1f} clips/s)")
    print(f"one pass      : {t_one_pass:8.2f} s  ({args.clips / t_one_pass:7.1f} clips/s)")
    print("same clips: yes")
    print(f"speedup={t_per_clip / t_one_pass:.2f}")


if __name__ == "__main__":
    main()
