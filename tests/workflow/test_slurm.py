"""The workflow through the Slurm profile on a real single-node Slurm cluster.

tests/slurm/start_slurm.sh installs and starts Slurm on this machine (root on Debian);
elsewhere these tests are skipped with the reason. The demo study (made smaller) runs once
locally and once through `--profile profiles/slurm`; the jobs must really go through
sbatch, the GPU rule must request its GPU, and the outputs must equal the local run's.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import REPO, job_counts, load_demo_config, run_snakemake

SLURM_DIR = REPO / "tests" / "workflow" / "slurm"


def slurm_unavailable() -> str | None:
    """Why a Slurm cluster cannot be started here, or None."""
    if os.geteuid() != 0:
        return "needs root to install and start Slurm"
    if not Path("/etc/debian_version").exists():
        return "start_slurm.sh installs Debian's Slurm packages; not Debian"
    if shutil.which("slurmctld") is None and shutil.which("apt-get") is None:
        return "no Slurm and no apt-get to install it"
    return None


pytestmark = [
    pytest.mark.slurm,
    pytest.mark.slow,
    pytest.mark.skipif(slurm_unavailable() is not None, reason=str(slurm_unavailable())),
]

# Status from squeue: this cluster has no accounting database for sacct (slurm.conf keeps
# finished jobs listed for an hour instead); a short first status check keeps it quick.
SLURM_ARGS = (
    "--profile",
    str(REPO / "profiles" / "slurm"),
    "--slurm-status-command",
    "squeue",
    "--slurm-init-seconds-before-status-checks",
    "2",
    "--slurm-no-account",
    "--latency-wait",
    "5",
    "--keep-going",
)


@pytest.fixture(scope="module")
def cluster():
    subprocess.run(["bash", str(SLURM_DIR / "start_slurm.sh")], check=True)
    yield
    subprocess.run(["bash", str(SLURM_DIR / "stop_slurm.sh")], check=False)


def small_demo() -> dict:
    config = load_demo_config()
    config["subjects"] = ["subj01"]
    config["demo"].update(n_subjects=1, n_shared=60, n_unique=300)
    config["encoding"].update(sizes=[100, 300], n_draws=1)
    config["scaling"].update(param_size=300)
    config["final"].update(size=300)
    return config


@pytest.fixture(scope="module")
def runs(cluster, tmp_path_factory):
    config = small_demo()
    local = tmp_path_factory.mktemp("local")
    run_snakemake(local, config)
    slurm = tmp_path_factory.mktemp("slurm")
    # the demo extracts on the CPU; its extraction jobs ask Slurm for a GPU all the same
    proc = run_snakemake(slurm, config, *SLURM_ARGS, "--set-resources", "extract_features:gpu=1")
    return local, slurm, proc.stdout + proc.stderr


def submitted(text: str) -> dict[str, list[str]]:
    """{rule: [Slurm job ids]} from the log of a run through the Slurm executor."""
    rule_of, rule = {}, None
    for line in text.splitlines():
        match = re.match(r"\s*(?:local)?rule (\w+):", line)
        if match:
            rule = match.group(1)
        match = re.match(r"\s*jobid: (\d+)", line)
        if match and rule:
            rule_of[match.group(1)] = rule
    jobs = {}
    for job, slurm_id in re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+)", text):
        jobs.setdefault(rule_of[job], []).append(slurm_id)
    return jobs


def test_jobs_go_through_sbatch_and_the_gpu_rule_gets_its_gpu(runs):
    _, _, text = runs
    jobs = submitted(text)
    assert len(jobs.get("extract_features", [])) == 3, text[-3000:]
    assert {"simulate_demo", "prepare_subject", "fit_subject_model"} <= set(jobs)
    # cheap steps are local rules: never queued
    assert not {"score_fit", "collect_scores", "fit_scaling", "figure_roi_scores"} & set(jobs)
    for rule, ids in jobs.items():
        for job_id in ids:
            info = subprocess.run(
                ["scontrol", "show", "job", job_id], capture_output=True, text=True, check=True
            ).stdout
            assert "JobState=COMPLETED" in info, info
            has_gpu = "gres:gpu:1" in info or "gres/gpu=1" in info
            assert has_gpu == (rule == "extract_features"), (rule, info)


def test_outputs_equal_the_local_run(runs):
    local, slurm, _ = runs
    results = Path("results/demo")
    tables = ["scores/scores.tsv", "scaling/data_scaling.tsv", "scaling/param_scaling.tsv"]
    for name in tables:
        a = pd.read_csv(local / results / name, sep="\t")
        b = pd.read_csv(slurm / results / name, sep="\t")
        pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-6)
    fits = sorted((local / results).glob("fits/*/*/*.h5"))
    assert len(fits) == len(list((slurm / results).glob("fits/*/*/*.h5"))) > 0
    for path in fits:
        other = slurm / path.relative_to(local)
        with h5py.File(path) as a, h5py.File(other) as b:
            keys = ("best_set", "best_alpha", "test_pred") if "best_set" in a else ("test_pred",)
            for key in keys:  # an ensemble's file holds predictions only
                np.testing.assert_allclose(a[key][()], b[key][()], rtol=1e-5, atol=1e-6)
    for name in ("data_scaling.png", "param_scaling.png", "roi_scores.png"):
        assert (slurm / results / "figures" / name).stat().st_size > 20_000


def test_nsd_dry_run_through_the_slurm_profile_tags_only_gpu_rules(tmp_path):
    config = yaml.safe_load((REPO / "config" / "nsd.yaml").read_text())
    config["subjects"] = ["subj01"]
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text((REPO / "config" / "config.yaml").read_text())
    proc = run_snakemake(tmp_path, config, "-n", "--profile", str(REPO / "profiles" / "slurm"))
    text = proc.stdout + proc.stderr
    counts = job_counts(text)
    assert counts["extract_features"] == 6 and counts["fetch_nsd"] > 40
    gpu_rules = {"extract_features", "fit_subject_model", "fit_fixed_set"}  # nsd.yaml: on cuda
    seen = set()
    for block in text.split("\nrule ")[1:]:
        rule = block.split(":")[0]
        resources = block.split("resources: ")[1].splitlines()[0]
        seen.add(rule)
        assert ("gpu=1" in resources) == (rule in gpu_rules), (rule, resources)
    assert gpu_rules <= seen and "prepare_subject" in seen


def job_resources(text: str) -> dict[tuple[str, str], dict[str, str]]:
    """{(rule, outputs): {resource: value}} of every job of a dry run's output."""
    jobs = {}
    for block in text.split("\nrule ")[1:]:
        if "output: " not in block:  # rule all
            continue
        line = block.split("resources: ")[1].splitlines()[0]
        key = (block.split(":")[0], block.split("output: ")[1].splitlines()[0])
        jobs[key] = dict(kv.split("=", 1) for kv in line.split(", "))
    return jobs


def readme_profile_block() -> dict:
    """The lab profile's keys as the README's Slurm section gives them."""
    readme = (REPO / "README.md").read_text()
    block = readme.split("# profiles/mylab/config.yaml")[1].split("\n", 1)[1].split("```")[0]
    return yaml.safe_load(block)


def test_the_readmes_cluster_recipe_keeps_every_rules_memory_and_runtime(tmp_path):
    config = yaml.safe_load((REPO / "config" / "nsd.yaml").read_text())
    config["subjects"] = ["subj01"]
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text((REPO / "config" / "config.yaml").read_text())
    lab = tmp_path / "profiles" / "mylab"
    shutil.copytree(REPO / "profiles" / "slurm", lab)
    profile = yaml.safe_load((lab / "config.yaml").read_text())
    (lab / "config.yaml").write_text(yaml.safe_dump({**profile, **readme_profile_block()}))
    runs = {}
    for name, path in (("plain", REPO / "profiles" / "slurm"), ("lab", lab)):
        proc = run_snakemake(tmp_path / name, config, "-n", "--profile", str(path))
        runs[name] = job_resources(proc.stdout + proc.stderr)
    assert runs["plain"].keys() == runs["lab"].keys()
    n_gpu = 0
    for (rule, outputs), plain in runs["plain"].items():
        lab_job = runs["lab"][rule, outputs]
        for key in ("mem_mb", "runtime", "gpu"):
            assert lab_job.get(key) == plain.get(key), (rule, key, plain, lab_job)
        assert int(plain["mem_mb"]) > 0 and int(plain["runtime"]) > 0, (rule, plain)
        assert lab_job["slurm_account"] == "mylab"
        gpu = plain.get("gpu") == "1"
        n_gpu += gpu
        assert lab_job["slurm_partition"] == ("gpu" if gpu else "cpu"), (rule, lab_job)
    assert n_gpu >= 6 + 2  # each model's extraction, and subj01's fits
    # the command line's --default-resources, by contrast, drops the profile's defaults
    proc = run_snakemake(
        tmp_path / "cli",
        config,
        "-n",
        "--profile",
        str(REPO / "profiles" / "slurm"),
        "--default-resources",
        "slurm_partition=gpu",
    )
    jobs = job_resources(proc.stdout).items()
    fetches = [r for (rule, _), r in jobs if rule == "fetch_nsd"]
    assert fetches and all(r.get("mem_mb") != "4000" for r in fetches)
