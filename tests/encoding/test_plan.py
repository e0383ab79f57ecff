"""A fit job's work and time request from its shapes (encscale.encoding.plan)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from encscale.encoding import plan


def shapes(**changes) -> plan.FitShapes:
    base = dict(
        rows=1200,
        n_train=1000,
        n_eval=200,
        voxels=3000,
        draws=[500, 1000],
        widths=[64, 20000],
        n_alphas=13,
        n_folds=5,
        routes=["primal", "kernel"],
    )
    return plan.FitShapes(**{**base, **changes})


def test_work_adds_up_each_set_and_draw():
    """The kernel set: its kernel over all rows once, per draw an n³ eigendecomposition,
    the evaluation rows' projection, the cross-validation and the predictions; the primal
    set: per draw a thin SVD instead of the eigendecomposition."""
    job = shapes()
    work = plan.fit_job_work(job)
    expected = plan.Work(gemm64=2.0 * 1200**2 * 20000)
    for n in job.draws:
        expected.eigh += plan.EIGH_FLOPS * n**3
        expected.gemm64 += 2.0 * 200 * n * n
        expected.add(plan.lgo_flops(n, n - 1, 5, 13, 3000))
        expected.gemm32 += 2.0 * 200 * (n - 1) * 3000
        expected.add(plan.thin_svd_flops(n, 64))
        expected.gemm64 += 2.0 * 200 * 64 * 64
        expected.add(plan.lgo_flops(n, 64, 5, 13, 3000))
        expected.gemm32 += 2.0 * 200 * 64 * 3000
    for kind in ("gemm64", "gemm32", "eigh"):
        assert getattr(work, kind) == pytest.approx(getattr(expected, kind), rel=1e-12)
    # two sets of the same width and route cost twice one
    twice = plan.fit_job_work(shapes(widths=[20000, 20000], routes=["kernel", "kernel"]))
    once = plan.fit_job_work(shapes(widths=[20000], routes=["kernel"]))
    assert twice.total == pytest.approx(2 * once.total)


def test_runtime_from_work_and_reads_with_retries():
    job = shapes(
        rows=6000, n_train=5400, n_eval=600, voxels=15000, draws=[1500, 3000, 4500, 6000] * 3
    )
    cpu = plan.RATES["cpu"]
    seconds = plan.fit_job_work(job).seconds(cpu) + 5e9 / cpu.storage
    minutes = plan.runtime_min(job, "cpu", 5e9)
    assert minutes == math.ceil(3 * seconds / 60) and minutes > 10
    assert plan.runtime_min(job, "cpu", 5e9, attempt=2) == math.ceil(6 * seconds / 60)
    assert plan.runtime_min(job, "cuda", 5e9) < minutes  # a GPU's (assumed) rates
    assert plan.runtime_min(shapes(draws=[100], widths=[8], routes=["primal"]), "cpu", 0) == 10


ONE_FIT = textwrap.dedent(
    """
    import json, sys
    import torch
    from encscale.encoding.fit import fit_encoding
    from encscale.jobs import peak_rss_bytes
    torch.set_num_threads(1)
    responses, features, out, size = sys.argv[1:]
    fit_encoding(responses, features, out, size=int(size), seed=0, n_folds=5,
                 alphas=[1e-2, 1.0, 1e2, 1e4], pool_sizes=[8])
    print(peak_rss_bytes())
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc (Linux)")
def test_one_fit_memory_bounds_a_fit_and_grows_as_it_does(tmp_path):
    """Two fits of a 4,096-feature set (a 64-channel 8 × 8 map, kept whole), on 800 and
    2,400 samples, each in a fresh process: the estimate bounds each measured peak, and the
    peak grows as the estimate does, within [0.5, 1.15] of it (the factorisation and the
    features dominate, not the fixed blocks)."""
    from encscale.simulate.subject import SubjectShapes, write_synthetic_subject

    shape = SubjectShapes(n_images=2700, n_test=300, voxels=300, layers=1, channels=64, side=8)
    features, responses, _ = write_synthetic_subject(tmp_path, shape, storage=np.float32)
    settings = {"pool_sizes": [8], "n_folds": 5, "alphas": {"num": 4}}
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[2] / "src"))
    peaks, estimates = [], []
    for size in (800, 2400):
        out = tmp_path / f"fit{size}.h5"
        run = subprocess.run(
            [sys.executable, "-c", ONE_FIT, str(responses), str(features), str(out), str(size)],
            check=True,
            env=env,
            capture_output=True,
            text=True,
        )
        peaks.append(int(run.stdout.split()[-1]))
        estimates.append(plan.one_fit_mem_mb(str(responses), str(features), size, settings) * 2**20)
        assert peaks[-1] <= estimates[-1], (size, peaks[-1] / 2**20, estimates[-1] / 2**20)
    grown, planned = peaks[1] - peaks[0], estimates[1] - estimates[0]
    assert 0.5 * planned <= grown <= 1.15 * planned, (grown / 2**20, planned / 2**20)
