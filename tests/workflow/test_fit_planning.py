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


def test_store_none_plans_no_extraction_and_gpu_fit_jobs_sized_from_the_models(tmp_path):
    from encscale.vision.model_check import model_shapes

    config = nsd_config()
    config["subjects"] = ["subj01", "subj02"]
    config["features"]["store"] = "none"
    proc = run_snakemake(tmp_path, config, "-n", env=NO_NETWORK)
    text = proc.stdout + proc.stderr
    counts = job_counts(text)
    assert "extract_features" not in counts and "fetch_weights" not in counts
    assert counts["fit_subject_model"] == 2 * len(config["models"])
    enc = config["encoding"]
    settings = dict(enc, alphas={"num": enc["alphas"]["num"]})
    draws = [n for n in enc["sizes"] for _ in range(enc["n_draws"])]
    pools = {m: e.get("pool_sizes", enc["pool_sizes"]) for m, e in config["models"].items()}
    shapes_of = model_shapes(config["models"], pools)
    group = 79 * 2**30 // 4  # a quarter of an H100's memory: the default group on cuda
    for block in job_blocks(text, "fit_subject_model"):
        subject, model = re.search(r"subject=(subj\d\d), model=(\w+)", block).groups()
        assert "results/nsd/stimuli.h5" in block and "features/" not in block
        mem_mb = int(re.search(r"\bmem_mb=(\d+)", block).group(1))
        gpu_mem_mb = int(re.search(r"\bgpu_mem_mb=(\d+)", block).group(1))
        assert "gpu=1" in block
        if model not in shapes_of:  # the plugin: its group's budget on top
            continue
        rows, shared = nsd.planned_images(subject)
        model_shape = shapes_of[model]
        shapes = plan.map_shapes(
            rows=rows,
            n_eval=shared,
            voxels=nsd.PLANNING_VOXELS,
            draws=draws,
            settings=settings,
            maps=model_shape["maps"],
        )
        extra = plan.model_maps_bytes(
            rows, model_shape["maps"], model_shape["n_params"], 2, group, 64
        )
        assert mem_mb == plan.mem_mb(shapes) + -(-extra // 2**20), model
        assert gpu_mem_mb == mem_mb - plan.BASE_BYTES // 2**20
        assert extra > 4 * model_shape["n_params"]  # the weights, and the maps of a group
    # EVA-02-CLIP-E: 64 maps of 1,792 × 16 × 16 over ~10,000 images in float16 are ~58 GB:
    # more than a group, so several forward passes
    e = shapes_of["eva02_enormous"]
    assert len(e["maps"]) == 64 and plan.model_maps_passes(10_000, e["maps"], 2, group) >= 3


def test_store_none_refuses_what_it_cannot_do(tmp_path):
    config = nsd_config()
    config["features"]["store"] = "none"
    config["encoding"]["job"] = "fit"
    proc = run_snakemake(tmp_path / "fit", config, "-n", env=NO_NETWORK, check=False)
    assert proc.returncode != 0 and "config key 'features.store'" in proc.stdout + proc.stderr
