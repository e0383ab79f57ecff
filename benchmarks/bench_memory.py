"""Peak memory of the subject × model fit job against its declared memory, on three shapes.

Each shape is a synthetic subject (:mod:`encscale.simulate.subject`) fitted by
:func:`encscale.encoding.subject.fit_subject_model` in a fresh process, whose peak resident
memory (VmHWM) is read at the end and compared with
:func:`encscale.encoding.plan.peak_bytes` of the same shapes, what the workflow declares as
the job's ``mem_mb``. Target: measured ≤ declared ≤ 1.25 × measured.

    python benchmarks/bench_memory.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import json, sys
import numpy as np
from encscale.encoding import plan
from encscale.encoding.subject import fit_subject_model
from encscale.jobs import peak_rss_bytes
features, responses, out, draws, folds, alphas, pool = json.loads(sys.argv[1])
paths = {(n, s): f"{out}/n{n}_s{s}.h5" for n, s in draws}
settings = dict(pool_sizes=pool, n_folds=folds, alphas=dict(num=alphas))
shapes = plan.fit_job_shapes(responses, features, [n for n, _ in draws], settings)
declared = plan.mem_mb(shapes) * 2**20
fit_subject_model(responses, features, paths, n_folds=folds, alphas=np.logspace(-1, 5, alphas),
                  pool_sizes=pool, max_memory=declared)
print(json.dumps(dict(declared=declared, measured=peak_rss_bytes())))
"""

SHAPES = {
    "narrow": dict(n_images=1500, n_test=200, voxels=4000, layers=4, channels=32, side=8),
    "wide": dict(n_images=2500, n_test=300, voxels=3000, layers=3, channels=192, side=14),
    "many voxels": dict(n_images=1200, n_test=200, voxels=20000, layers=2, channels=96, side=14),
}
QUICK = {
    "narrow": dict(n_images=600, n_test=100, voxels=2000, layers=2, channels=16, side=8),
    "wide": dict(n_images=900, n_test=100, voxels=1500, layers=2, channels=96, side=14),
    "many voxels": dict(n_images=600, n_test=100, voxels=8000, layers=2, channels=32, side=8),
}


def measure(name: str, shape: dict, directory: Path) -> dict:
    from encscale.simulate.subject import SubjectShapes, write_synthetic_subject

    features, responses, _ = write_synthetic_subject(directory / name, SubjectShapes(**shape))
    n_train = shape["n_images"] - shape["n_test"]
    sizes = [n_train // 4, n_train // 2, n_train]
    draws = [(n, s) for n in sizes for s in (0, 1) if not (n == n_train and s == 1)]
    args = [str(features), str(responses), str(directory / name), draws, 5, 13, [1, 2, 4, 8]]
    run = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(args)], capture_output=True, text=True
    )
    if run.returncode:
        raise RuntimeError(run.stderr[-3000:])
    return json.loads(run.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller shapes")
    args = parser.parse_args()
    shapes = QUICK if args.quick else SHAPES
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for name, shape in shapes.items():
            got = measure(name, shape, Path(tmp))
            ratio = got["declared"] / got["measured"]
            worst = max(worst, abs(ratio - 1))
            print(
                f"{name:12s} {shape}: measured {got['measured'] / 2**20:7.0f} MB, "
                f"declared {got['declared'] / 2**20:7.0f} MB, declared/measured {ratio:.2f}"
                + ("  ABOVE" if ratio < 1 else "")
            )
    print(f"max_relative_gap={worst:.2f}")


if __name__ == "__main__":
    main()
