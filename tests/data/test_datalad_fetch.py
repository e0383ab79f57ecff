"""Fetching the CNeuroMod (Algonauts 2025) DataLad dataset, against a tiny local copy of it.

The dataset is built here in the release's layout: a superdataset whose ``fmri`` and
``stimuli`` are subdatasets, with annexed files (a real HDF5 file of runs, real videos). It
is cloned by its local path, so nothing leaves the machine. git-annex is installed from
Debian when missing (root on Debian); elsewhere these tests are skipped with the reason.
"""

import hashlib
import logging
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import datalad.api as dl
import h5py
import numpy as np
import pytest
import yaml

from conftest import REPO, dry_run_jobs, run_snakemake
from encscale.data import datalad_fetch
from encscale.data.cneuromod import fmri_path, movie_path
from encscale.data.datalad_fetch import fetch_dataset
from encscale.video.decode import write_video

FMRI = fmri_path("", "sub-01", "friends")  # paths relative to the dataset's root
MOVIE_A = movie_path("", "friends_s01e01a")
MOVIE_B = movie_path("", "friends_s01e01b")
MOVIE_C = movie_path("", "friends_s01e02a")  # another episode: GPT-2's held-out validation
RUNS = {"ses-001_task-s01e01a": 20, "ses-001_task-s01e01b": 15}  # key: TRs
IDENTITY = {
    "GIT_AUTHOR_NAME": "encscale tests",
    "GIT_AUTHOR_EMAIL": "tests@encscale.invalid",
    "GIT_COMMITTER_NAME": "encscale tests",
    "GIT_COMMITTER_EMAIL": "tests@encscale.invalid",
}


def git_annex_unavailable() -> str | None:
    """Why git-annex can neither be found nor installed here, or None."""
    if shutil.which("git-annex") is not None:
        return None
    if os.geteuid() != 0:
        return "git-annex is not installed, and installing it (apt-get) needs root"
    if not Path("/etc/debian_version").exists() or shutil.which("apt-get") is None:
        return "git-annex is not installed, and there is no Debian apt-get to install it"
    return None


pytestmark = pytest.mark.skipif(
    git_annex_unavailable() is not None, reason=str(git_annex_unavailable())
)


@pytest.fixture(scope="module", autouse=True)
def git_annex():
    """git-annex on the PATH (installed from Debian if missing) and a git identity for the
    commits of the datasets made here (through the environment, never the global config)."""
    if shutil.which("git-annex") is None:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        install = ["apt-get", "install", "-y", "--no-install-recommends", "git-annex"]
        if subprocess.run(install, env=env, capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update"], env=env, capture_output=True, check=True)
            subprocess.run(install, env=env, capture_output=True, check=True)
    with pytest.MonkeyPatch.context() as mp:
        for var, value in IDENTITY.items():
            mp.setenv(var, value)
        yield


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def source(tmp_path_factory, git_annex) -> tuple[Path, dict[str, str]]:
    """A tiny dataset in the Algonauts 2025 layout, and the SHA-256 of each of its files."""
    root = tmp_path_factory.mktemp("algonauts_2025") / "dataset"
    ds = dl.create(str(root), result_renderer="disabled")
    for sub in ("fmri", "stimuli"):
        ds.create(sub, result_renderer="disabled")
    (root / FMRI).parent.mkdir(parents=True)
    rng = np.random.default_rng(0)
    with h5py.File(root / FMRI, "w") as h5:
        for key, n_trs in RUNS.items():
            h5[key] = rng.normal(size=(n_trs, 1000)).astype(np.float32)
    for i, movie in enumerate((MOVIE_A, MOVIE_B, MOVIE_C)):
        (root / movie).parent.mkdir(parents=True, exist_ok=True)
        frames = np.full((12, 16, 16, 3), 40 * (i + 1), np.uint8)
        frames[:, :, : 4 + 4 * i] = rng.integers(0, 256, (12, 16, 4 + 4 * i, 3), dtype=np.uint8)
        write_video(root / movie, frames, fps=6.0)
    ds.save(recursive=True, message="the tiny release", result_renderer="disabled")
    for sub in ("fmri", "stimuli"):
        assert dl.Dataset(str(root / sub)).is_installed()
    for path in (FMRI, MOVIE_A, MOVIE_B):
        assert (root / path).is_symlink()  # annexed, as in the release
    return root, {p: sha256(root / p) for p in (FMRI, MOVIE_A, MOVIE_B, MOVIE_C)}


def assert_fetched(root: Path, digests: dict[str, str], paths: list[str]) -> None:
    for p in paths:
        assert (root / p).is_file(), p
        assert sha256(root / p) == digests[p], p


def messages(caplog) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("encscale"))


def test_clone_and_get_give_the_original_files_and_a_second_call_does_nothing(
    source, tmp_path, caplog
):
    src, digests = source
    root = tmp_path / "cneuromod"
    caplog.set_level(logging.INFO, logger="encscale")
    fetch_dataset(str(src), root, [FMRI, MOVIE_A], jobs=2)
    assert_fetched(root, digests, [FMRI, MOVIE_A])
    with h5py.File(root / FMRI) as got, h5py.File(src / FMRI) as original:
        assert sorted(got) == sorted(RUNS)
        for key in RUNS:
            np.testing.assert_array_equal(got[key][()], original[key][()])
    # only what was asked for: the other movie is a dangling annex symlink
    assert (root / MOVIE_B).is_symlink() and not (root / MOVIE_B).exists()
    log = messages(caplog)
    assert "cloning" in log
    assert f"{FMRI}: fetched ({(src / FMRI).stat().st_size} bytes)" in log
    assert f"{MOVIE_A}: fetched" in log

    caplog.clear()
    stamps = {p: (root / p).stat().st_mtime_ns for p in (FMRI, MOVIE_A)}
    fetch_dataset(str(src), root, [FMRI, MOVIE_A])
    log = messages(caplog)
    assert "cloning" not in log and "fetched" not in log
    assert f"{FMRI}: already present" in log and f"{MOVIE_A}: already present" in log
    assert stamps == {p: (root / p).stat().st_mtime_ns for p in (FMRI, MOVIE_A)}


def test_deleted_worktree_files_are_restored_and_fetched(source, tmp_path, caplog):
    """What Snakemake does before a job: its existing outputs are deleted, including the
    dangling symlinks of files whose content is not here yet."""
    src, digests = source
    root = tmp_path / "cneuromod"
    fetch_dataset(str(src), root, [FMRI, MOVIE_A])
    assert (root / MOVIE_B).is_symlink() and not (root / MOVIE_B).exists()
    (root / MOVIE_B).unlink()  # not yet fetched
    (root / FMRI).unlink()  # fetched: its content stays in the annex
    caplog.set_level(logging.INFO, logger="encscale")
    fetch_dataset(str(src), root, [FMRI, MOVIE_B])
    assert_fetched(root, digests, [FMRI, MOVIE_A, MOVIE_B])
    log = messages(caplog)
    assert f"{MOVIE_B}: restoring" in log and f"{MOVIE_B}: fetched" in log
    assert f"{FMRI}: restoring" in log and f"{FMRI}: already present" in log


def test_output_folders_made_before_the_clone_are_no_obstacle(source, tmp_path):
    """Snakemake makes the folders of a job's outputs before it runs: in the clone's target,
    and later in the mount point of a subdataset not installed yet."""
    src, digests = source
    root = tmp_path / "cneuromod"
    (root / FMRI).parent.mkdir(parents=True)
    fetch_dataset(str(src), root, [FMRI])
    assert not dl.Dataset(str(root / "stimuli")).is_installed()
    (root / MOVIE_B).parent.mkdir(parents=True)
    fetch_dataset(str(src), root, [MOVIE_B])
    assert_fetched(root, digests, [FMRI, MOVIE_B])


def test_a_path_not_in_the_dataset_is_named(source, tmp_path):
    src, _ = source
    root = tmp_path / "cneuromod"
    missing = fmri_path("", "sub-02", "friends")
    with pytest.raises(FileNotFoundError, match=f"{missing}: no such file in the dataset"):
        fetch_dataset(str(src), root, [FMRI, missing])
    missing = "stimuli/movies/friends/s9/friends_s09e01a.mkv"  # in a subdataset not installed
    with pytest.raises(FileNotFoundError, match=missing):
        fetch_dataset(str(src), root, [missing])
    with pytest.raises(ValueError, match="relative"):
        fetch_dataset(str(src), root, ["../outside.h5"])


def test_a_source_that_is_not_a_dataset_gives_a_clear_error(tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "file.txt").write_text("not a dataset")
    for bad in (plain, tmp_path / "absent"):
        with pytest.raises(RuntimeError, match=f"cannot clone '{bad}'.*DataLad dataset"):
            fetch_dataset(str(bad), tmp_path / "cneuromod", [FMRI])
        assert not (tmp_path / "cneuromod" / ".git").exists()


def test_missing_git_annex_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setattr(datalad_fetch.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="apt-get install git-annex.*conda-forge git-annex"):
        fetch_dataset(str(tmp_path), tmp_path / "cneuromod", [FMRI])


def test_a_git_without_identity_gets_one_for_the_annex_commits(source, tmp_path, monkeypatch):
    src, digests = source
    home = tmp_path / "home"
    home.mkdir()
    for var in IDENTITY:
        monkeypatch.delenv(var)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    assert subprocess.run(["git", "var", "GIT_COMMITTER_IDENT"], capture_output=True).returncode
    fetch_dataset(str(src), tmp_path / "cneuromod", [MOVIE_A])
    assert_fetched(tmp_path / "cneuromod", digests, [MOVIE_A])
    assert "GIT_COMMITTER_NAME" not in os.environ  # the fallback was only for the call


SNAKEFILE = """\
DATASET = "cneuromod"
CNEUROMOD = {{"root": "data/cneuromod", "source": {source!r}, "jobs": 2}}


def cneuromod_fetch_paths():
    return {paths!r}


rule all:
    input:
        [f"{{CNEUROMOD['root']}}/{{p}}" for p in cneuromod_fetch_paths()],


include: {rule!r}
"""


def run_rule(workdir: Path, src: Path, paths: list[str], *args: str) -> str:
    """Run the real fetch_cneuromod rule in ``workdir`` for ``paths``; return its log."""
    snakefile = workdir / "Snakefile"
    rule = str(REPO / "workflow" / "rules" / "movies" / "fetch.smk")
    snakefile.write_text(SNAKEFILE.format(source=str(src), paths=paths, rule=rule))
    pythonpath = os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")]))
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(snakefile), "--cores", "1"]
    cmd += ["--resources", "download_slots=1", *args]
    proc = subprocess.run(
        cmd,
        cwd=workdir,
        env=dict(os.environ, PYTHONPATH=pythonpath),
        capture_output=True,
        text=True,
    )
    log = workdir / "logs" / "cneuromod" / "fetch_cneuromod.log"
    job_log = log.read_text() if log.exists() else ""
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}\n{job_log}"
    return proc.stderr


def test_the_snakemake_rule_fetches_and_refetches(source, tmp_path):
    src, digests = source
    root = tmp_path / "data" / "cneuromod"
    log = tmp_path / "logs" / "cneuromod" / "fetch_cneuromod.log"  # removed before each job
    # a fresh study: Snakemake makes the output folders, then the job clones and gets
    run_rule(tmp_path, src, [FMRI, MOVIE_A])
    assert_fetched(root, digests, [FMRI, MOVIE_A])
    assert "cloning" in log.read_text() and f"{MOVIE_A}: fetched" in log.read_text()
    assert "Nothing to be done" in run_rule(tmp_path, src, [FMRI, MOVIE_A])
    # one more file, whose output is a dangling symlink: the job runs again, and Snakemake
    # first deletes all its existing outputs, that dangling symlink included
    run_rule(tmp_path, src, [FMRI, MOVIE_A, MOVIE_B])
    assert_fetched(root, digests, [FMRI, MOVIE_A, MOVIE_B])
    text = log.read_text()
    assert "cloning" not in text
    assert all(f"{p}: restoring" in text for p in (FMRI, MOVIE_A, MOVIE_B))
    assert f"{MOVIE_A}: already present" in text and f"{MOVIE_B}: fetched" in text
    # forced: every output deleted by Snakemake, restored with its content from the annex
    run_rule(tmp_path, src, [FMRI, MOVIE_A, MOVIE_B], "--forcerun", "fetch_cneuromod")
    assert_fetched(root, digests, [FMRI, MOVIE_A, MOVIE_B])
    text = log.read_text()
    assert all(f"{p}: already present" in text for p in (FMRI, MOVIE_A, MOVIE_B))


def test_the_study_config_installs_and_fetches_through_the_main_workflow(source, tmp_path):
    """config/cneuromod.yaml, pointed at the tiny release: planning touches nothing and
    holds one job, which installs the dataset's tree (no content); once it has run, the DAG
    has every run of the study's grid, and the fetch rule gets exactly the files the study
    reads."""
    src, digests = source
    config = yaml.safe_load((REPO / "config" / "cneuromod.yaml").read_text())
    root = tmp_path / "data" / "cneuromod"
    config["subjects"] = ["sub-01"]
    config["cneuromod"].update(root=str(root), source=str(src), jobs=1)
    config["movies"].update(
        encoding=["friends_s01e01*"], test=["friends_s01e01b"], validation=["friends_s01e02a"]
    )
    assert [rule for rule, _ in dry_run_jobs(tmp_path, config)] == ["install_cneuromod", "all"]
    assert not root.exists()
    run_snakemake(tmp_path, config, "--resources", "download_slots=1")
    assert dl.Dataset(str(root)).is_installed() and not (root / MOVIE_A).exists()
    jobs = Counter(rule for rule, _ in dry_run_jobs(tmp_path, config))
    n_runs = 1 + 4 + 4 + 4 + 3 + 3 + 3  # the base, each dimension's other values, equal steps
    assert jobs["train_gpt"] == jobs["extract_features"] == jobs["fit_encoding"] == n_runs
    assert jobs["fetch_cneuromod"] == jobs["train_tokenizer"] == jobs["figures_video"] == 1
    assert dl.Dataset(str(root)).is_installed() and not (root / MOVIE_A).exists()
    run_snakemake(tmp_path, config, "fetch_cneuromod")
    assert_fetched(root, digests, [FMRI, MOVIE_A, MOVIE_B, MOVIE_C])
