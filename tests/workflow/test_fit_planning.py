"""The first study's fits as planned: one job per subject × model, its memory from the
shapes; the per-fit route where the config asks for it."""

from __future__ import annotations

import re

import yaml

from conftest import NO_NETWORK, REPO, job_counts, run_snakemake
from encscale.data import nsd
from encscale.encoding import plan


def nsd_config() -> dict:
    return yaml.safe_load((REPO / "config" / "nsd.yaml").read_text())


def job_blocks(text: str, rule: str) -> list[str]:
    return [b for b in text.split("\nrule ")[1:] if b.startswith(f"{rule}:")]


def test_nsd_plans_one_fit_job_per_subject_and_model_with_memory_from_shapes(tmp_path):
    config = nsd_config()
    proc = run_snakemake(tmp_path, config, "-n", env=NO_NETWORK)
    text = proc.stdout + proc.stderr
    counts = job_counts(text)
    n_subjects, n_models = len(config["subjects"]), len(config["models"])
    assert counts["fit_subject_model"] == n_subjects * n_models
    assert "fit_encoding" not in counts
    enc = config["encoding"]
    settings = dict(enc, alphas={"num": enc["alphas"]["num"]})
    draws = [n for n in enc["sizes"] for _ in range(enc["n_draws"])]
    seen = set()
    for block in job_blocks(text, "fit_subject_model"):
        subject = re.search(r"wildcards: subject=(subj\d\d)", block).group(1)
        mem_mb = int(re.search(r"\bmem_mb=(\d+)", block).group(1))
        # before the responses exist: the images the subject saw, nsdgeneral's voxels
        # (about), every set on the kernel route (k = 1 … 16: 16 kernels of a layer at once)
        rows, shared = nsd.planned_images(subject)
        shapes = plan.planned_shapes(
            rows=rows,
            n_eval=shared,
            voxels=nsd.PLANNING_VOXELS,
            draws=draws,
            settings=settings,
        )
        assert mem_mb == plan.mem_mb(shapes)
        runtime = int(re.search(r"\bruntime=(\d+)", block).group(1))
        assert runtime == plan.runtime_min(shapes, enc["device"], 0)
        assert shapes.ks_per_layer == 16
        assert mem_mb > 16 * 8 * rows**2 / 2**20  # the kernels alone
        seen.add(subject)
    assert seen == set(config["subjects"])


def test_per_fit_jobs_where_the_config_asks(tmp_path):
    config = nsd_config()
    config["subjects"] = ["subj01"]
    config["encoding"]["job"] = "fit"
    text = run_snakemake(tmp_path, config, "-n", env=NO_NETWORK).stdout
    counts = job_counts(text)
    assert "fit_subject_model" not in counts
    # the fits the outputs need: eva02_large at every size, the others at 4500 and 6000
    enc = config["encoding"]
    n_pairs = len(enc["sizes"]) + (len(config["models"]) - 1) * 2
    assert counts["fit_encoding"] == n_pairs * enc["n_draws"]
