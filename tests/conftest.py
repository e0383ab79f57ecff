"""Shared helpers: running the workflow with a given config in a scratch directory."""

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
# Any request would go to this closed port and fail: a plan must not need the network.
NO_NETWORK = {
    "HTTP_PROXY": "http://127.0.0.1:9",
    "HTTPS_PROXY": "http://127.0.0.1:9",
    "AWS_EC2_METADATA_DISABLED": "true",
}


# The simulator's settings of the tests' miniature NSD (encscale.simulate.nsd). Small, but
# with 5 repeats: at 3 repeats and 190 images per subject the ncsnr estimate is too noisy
# for the 0.02 acceptance tolerance (≈ 0.025 mean error); with 5 it is ≈ 0.013.
SIM_PARAMS = {
    "seed": 3,
    "n_subjects": 2,
    "n_shared": 40,
    "n_unique": 150,
    "n_repeats": 5,
    "trials_per_session": 200,
    "image_size": 32,
    "volume_shape": [14, 14, 12],
    "snr_range": [0.3, 3.0],
    "hidden_model": {
        "timm": "convnext_atto",
        "kwargs": {"dims": [8, 16, 24, 32], "depths": [1, 1, 1, 1], "ls_init_value": 1.0},
        "seed": 0,
        "input_size": 32,
    },
}

# A smaller one, for tests that simulate many times or read every image.
TINY_SIM_PARAMS = {
    **SIM_PARAMS,
    "n_subjects": 1,
    "n_shared": 10,
    "n_unique": 20,
    "n_repeats": 2,
    "trials_per_session": 25,
    "image_size": 16,
    "volume_shape": [10, 10, 8],
}


def write_stimuli(path: Path, n: int, side: int, seed: int = 0) -> Path:
    """A stimuli.h5 of ``n`` random uint8 (side × side × 3) images."""
    import h5py
    import numpy as np

    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as f:
        f["images"] = rng.integers(0, 256, (n, side, side, 3), dtype=np.uint8)
    return path


def load_demo_config() -> dict:
    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def run_snakemake(
    workdir: Path,
    config: dict,
    *args: str,
    check: bool = True,
    env: dict | None = None,
    launcher: tuple[str, ...] = (str(SNAKEMAKE),),
):
    """Run the repository's Snakefile in ``workdir`` with ``config``; return the process.

    ``env``: variables added to the environment of the run; ``launcher``: the command that
    starts Snakemake.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    cfg = workdir / "study.yaml"
    cfg.write_text(yaml.safe_dump(config, sort_keys=False))
    cmd = [
        *launcher,
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(cfg),
        "--cores",
        "2",
        *args,
    ]
    env = dict(os.environ, PYTHONHASHSEED="0", **(env or {}))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=workdir)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed:\n{proc.stdout[-5000:]}\n{proc.stderr[-5000:]}")
    return proc


def dry_run_jobs(workdir, config) -> list[tuple[str, str]]:
    """(rule, wildcards) of every job a dry run would execute."""
    out = run_snakemake(workdir, config, "-n").stdout
    jobs, rule = [], None
    for line in out.splitlines():
        line = line.strip()
        if line.startswith(("rule ", "localrule ")):
            rule = line.split()[1].rstrip(":")
            jobs.append((rule, ""))
        elif line.startswith("wildcards:") and rule:
            jobs[-1] = (rule, line.removeprefix("wildcards:").strip())
    return jobs


def report_items(html: str) -> dict[str, dict]:
    """The report's embedded results: {path: record with caption, mime_type, data_uri}."""
    match = re.search(r"var results = (\{.*?\});\n", html)
    assert match, "the report embeds no results"
    return json.loads(match.group(1))


def embedded_bytes(item: dict) -> bytes:
    return base64.b64decode(item["data_uri"].split(";base64,", 1)[1])


@pytest.fixture
def demo_config() -> dict:
    return load_demo_config()


@pytest.fixture(scope="module")
def one_thread():
    """Torch on one thread for a module: tiny 3-D convolutions run faster so."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def job_counts(text: str) -> dict[str, int]:
    """The 'Job stats' table of a Snakemake dry run as {rule: count}."""
    counts = {}
    for line in text.split("Job stats:")[1].splitlines()[3:]:
        row = line.split()
        if not row:
            break
        if len(row) == 2 and row[1].isdigit():
            counts[row[0]] = int(row[1])
    return counts
