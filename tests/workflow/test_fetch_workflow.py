"""The NSD fetch rules against an S3-compatible server on 127.0.0.1 serving a simulated NSD.

The server holds the simulator's NSD tree as the bucket; the study (dataset nsd, source s3)
fetches what preparing one subject needs through the real rules, then prepares it.
"""

import copy
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml
from s3server import serve_bucket

from conftest import REPO, run_snakemake
from conftest import SIM_PARAMS as PARAMS
from encscale.data import nsd
from encscale.data.prepare import prepare_stimuli
from encscale.simulate.nsd import simulate_nsd

BUCKET = "natural-scenes-dataset"
SIM = {
    **PARAMS,
    "seed": 5,
    "n_subjects": 1,
    "n_shared": 12,
    "n_unique": 30,
    "n_repeats": 3,
    "trials_per_session": 45,
    "volume_shape": [12, 12, 10],
    "snr_range": [0.5, 2.0],
}
N_SESSIONS = -(-(SIM["n_shared"] + SIM["n_unique"]) * SIM["n_repeats"] // SIM["trials_per_session"])
ATLASES = ["streams", "floc-faces"]
BETA = "betas_fithrf_GLMdenoise_RR"
TARGET = "results/nsd/responses/subj01.h5"


@pytest.fixture(scope="module")
def bucket(tmp_path_factory) -> Path:
    """A simulated NSD tree (the bucket's content); the planted truth is not part of NSD."""
    root = tmp_path_factory.mktemp("bucket")
    simulate_nsd(root, {**SIM, "beta_version": BETA})
    shutil.rmtree(root / "truth")
    return root


@pytest.fixture
def server(bucket):
    with serve_bucket(bucket, BUCKET) as srv:
        yield srv


def study_config(endpoint_url: str, **nsd_keys) -> dict:
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["dataset"] = "nsd"
    config["subjects"] = ["subj01"]
    config["nsd"] = {
        "root": "resources/nsd",
        "source": "s3",
        "bucket": BUCKET,
        "endpoint_url": endpoint_url,
        "credentials": "anonymous",
        "retries": 3,
        "sessions": {"subj01": N_SESSIONS},
        **nsd_keys,
    }
    config["prepare"] = {"beta_version": BETA, "mask_roi": "nsdgeneral", "atlases": ATLASES}
    config["final"] = {"atlases": ["floc-faces"]}
    return config


def key_of(path: str) -> str:
    return str(Path(path).relative_to("ROOT"))


def expected_keys() -> list[str]:
    paths = [nsd.expdesign_path("ROOT"), nsd.stimuli_path("ROOT")]
    paths += [nsd.betas_path("ROOT", "subj01", s, BETA) for s in range(1, N_SESSIONS + 1)]
    paths += [nsd.ncsnr_path("ROOT", "subj01", BETA), nsd.brainmask_path("ROOT", "subj01")]
    paths += [nsd.roi_path("ROOT", "subj01", a) for a in ["nsdgeneral", *ATLASES]]
    paths += [nsd.ctab_path("ROOT", "subj01", a) for a in ATLASES]
    return [key_of(p) for p in paths]


def gets(server) -> list[tuple[str, str | None]]:
    return [(key, rng) for method, key, rng in list(server.requests) if method == "GET"]


def test_fetch_rules_bring_nsd_identical_resume_and_fetch_once(bucket, server, tmp_path):
    session2 = key_of(nsd.betas_path("ROOT", "subj01", 2, BETA))
    size = (bucket / session2).stat().st_size
    server.faults[session2] = {"cut_after": size // 2}  # the server drops the connection
    config = study_config(server.endpoint_url)
    run_snakemake(tmp_path, config, TARGET)

    root = tmp_path / "resources/nsd"
    fetched = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert fetched == sorted(expected_keys())
    for key in fetched:
        assert (root / key).read_bytes() == (bucket / key).read_bytes(), key
    # the cut transfer was resumed where it stopped, not restarted
    ranges = [rng for key, rng in gets(server) if key == session2]
    assert len(ranges) == 2 and ranges[1].startswith(f"bytes={size // 2}-"), ranges
    with h5py.File(tmp_path / TARGET, "r") as h5:
        assert h5.attrs["n_sessions"] == N_SESSIONS and h5["train/responses"].shape[0] > 0

    # a second run fetches nothing and has nothing to do
    n_requests = len(server.requests)
    proc = run_snakemake(tmp_path, config, TARGET)
    assert "Nothing to be done" in proc.stdout + proc.stderr
    assert len(server.requests) == n_requests


def test_corrupted_object_is_refused_and_named(server, tmp_path):
    ncsnr = key_of(nsd.ncsnr_path("ROOT", "subj01", BETA))
    server.faults[ncsnr] = {"corrupt": True}
    proc = run_snakemake(tmp_path, study_config(server.endpoint_url), TARGET, check=False)
    out = proc.stdout + proc.stderr
    log = (tmp_path / "logs/nsd/fetch_nsd" / f"{ncsnr}.log").read_text()
    assert proc.returncode != 0
    assert f"s3://{BUCKET}/{ncsnr}" in log and "refused" in log, log[-2000:]
    assert "fetch_nsd" in out
    dest = tmp_path / "resources/nsd" / ncsnr
    assert not dest.exists() and not Path(f"{dest}.part").exists()
    assert not (tmp_path / TARGET).exists()


def test_seen_stimuli_are_read_from_the_bucket_row_by_row(bucket, server, tmp_path):
    config = study_config(server.endpoint_url, stimuli="seen")
    run_snakemake(tmp_path, config, "results/nsd/stimuli.h5")
    stimuli_key = key_of(nsd.stimuli_path("ROOT"))
    assert not (tmp_path / "resources/nsd" / stimuli_key).exists()
    reads = [rng for key, rng in gets(server) if key == stimuli_key]
    assert reads and all(rng and not rng.endswith("-") for rng in reads), reads[:5]
    prepare_stimuli(bucket, ["subj01"], tmp_path / "local.h5")
    got_path = tmp_path / "results/nsd/stimuli.h5"
    with h5py.File(got_path) as got, h5py.File(tmp_path / "local.h5") as want:
        np.testing.assert_array_equal(got["ids"][()], want["ids"][()])
        np.testing.assert_array_equal(got["images"][()], want["images"][()])


def test_missing_object_names_the_url(bucket, tmp_path):
    root = tmp_path / "bucket"
    shutil.copytree(bucket, root)
    missing = key_of(nsd.roi_path("ROOT", "subj01", "floc-faces"))
    (root / missing).unlink()
    with serve_bucket(root, BUCKET) as srv:
        config = copy.deepcopy(study_config(srv.endpoint_url))
        proc = run_snakemake(tmp_path / "work", config, TARGET, check=False)
    log = (tmp_path / "work/logs/nsd/fetch_nsd" / f"{missing}.log").read_text()
    assert proc.returncode != 0 and f"s3://{BUCKET}/{missing}" in log, log[-2000:]
