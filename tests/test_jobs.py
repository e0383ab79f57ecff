"""The workflow jobs' setting: log file, torch threads, provenance, failures in the log."""

from __future__ import annotations

import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
import warnings
from types import SimpleNamespace

import pytest
import torch
from snakemake.iocontainers import (
    InputFiles,
    Log,
    OutputFiles,
    Params,
    ResourceList,
    Snakemake,
    Wildcards,
)

from encscale import jobs
from encscale.jobs import job_context, progress


def fake_job(log_path, threads: int = 1) -> SimpleNamespace:
    """What a Snakemake script sees of its job (``snakemake``)."""
    return SimpleNamespace(
        rule="fit_encoding",
        wildcards={"subject": "subj01", "size": "100"},
        params={"settings": {"n_folds": 5}},
        log=[str(log_path)],
        threads=threads,
        resources={"mem_mb": 16000, "runtime": 120, "tmpdir": "/tmp"},
    )


def snakemake_job(log_path) -> Snakemake:
    """The object Snakemake itself gives a script (``snakemake``), with its namedlists."""
    resources = {"_cores": 4, "_nodes": 1, "mem_mb": 16000, "mem_mib": 15259, "disk_mb": 1000}
    return Snakemake(
        InputFiles(["responses.h5"]),
        OutputFiles(["fit.h5"]),
        Params(fromdict={"settings": {"n_folds": 5}}),
        Wildcards(fromdict={"subject": "subj01", "model": "resnet18"}),
        4,
        ResourceList(fromdict={**resources, "tmpdir": "/tmp", "runtime": 90, "gpu": 1}),
        Log([str(log_path)]),
        {},
        "fit_subject_model",
        None,
    )


def test_job_logs_to_its_file_and_yields_its_provenance(tmp_path):
    path = tmp_path / "logs" / "fit_encoding" / "subj01.log"
    with job_context(fake_job(path)) as provenance:
        logging.getLogger("encscale.encoding.fit").info("fold %d of %d", 2, 5)
        logging.getLogger("encscale").debug("not at INFO")
        logging.getLogger("elsewhere").warning("not an encscale logger")
        warnings.warn("ill-conditioned Gram matrix", RuntimeWarning, stacklevel=1)
    assert provenance == {
        "rule": "fit_encoding",
        "wildcards": {"subject": "subj01", "size": "100"},
        "config": {"settings": {"n_folds": 5}},
    }
    text = path.read_text()
    lines = text.splitlines()
    assert "encscale.jobs INFO: job start: rule fit_encoding" in lines[0]
    assert lines[1].endswith("encscale.encoding.fit INFO: fold 2 of 5")
    assert "py.warnings WARNING" in lines[2] and "ill-conditioned Gram matrix" in lines[2]
    assert "encscale.jobs INFO: job end: rule fit_encoding ok after " in lines[-1]
    assert "not at INFO" not in text and "not an encscale logger" not in text
    # after the job, nothing more is written there
    logging.getLogger("encscale").warning("after the job")
    assert path.read_text() == text


def test_a_failed_job_writes_its_traceback_to_the_log(tmp_path):
    path = tmp_path / "job.log"

    def fit() -> None:
        raise ValueError("resp.h5: train/responses has 3 non-finite values")

    with pytest.raises(ValueError, match="3 non-finite"), job_context(fake_job(path)):
        fit()
    text = path.read_text()
    assert "encscale.jobs ERROR: rule fit_encoding failed" in text
    assert "Traceback (most recent call last)" in text
    assert "in fit\n" in text
    assert "ValueError: resp.h5: train/responses has 3 non-finite values" in text
    end = text.splitlines()[-1]
    assert "encscale.jobs ERROR: job end: rule fit_encoding failed (ValueError: resp.h5: " in end


def test_the_start_line_of_a_real_snakemake_job(tmp_path):
    path = tmp_path / "job.log"
    with job_context(snakemake_job(path)) as provenance:
        pass
    assert provenance["wildcards"] == {"subject": "subj01", "model": "resnet18"}
    start, end = path.read_text().splitlines()
    assert start.endswith(
        "encscale.jobs INFO: job start: rule fit_subject_model (subject=subj01, model=resnet18); "
        f"threads 4; mem_mb 16000, runtime 90 min, gpu 1; host {socket.gethostname()}, "
        f"pid {os.getpid()}"
    )
    assert re.search(
        r"job end: rule fit_subject_model ok after \d+\.\d s; "
        r"peak memory \d+ MiB resident \(children \d+ MiB\)$",
        end,
    )


def test_the_start_line_without_wildcards_or_resources():
    job = SimpleNamespace(rule="report", wildcards={}, threads=1)
    line = jobs.start_line(job)
    assert line.startswith(
        "job start: rule report (no wildcards); threads 1; no resources declared;"
    )


def test_the_end_line_gives_the_peak_memory(monkeypatch):
    """The peak resident set in MiB (ru_maxrss is in KiB on Linux), and CUDA's where torch has
    initialised it (here a stand-in torch: no GPU needed)."""
    import resource

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    line = jobs.end_line("fit", 12.34)
    got = float(re.search(r"peak memory (\d+) MiB resident", line)[1])
    assert line.startswith("job end: rule fit ok after 12.3 s; ")
    assert abs(got - rss) <= max(2, 0.05 * rss)  # grown a little since, at most
    assert "CUDA" not in line  # torch is imported here, but CUDA was never initialised
    cuda = SimpleNamespace(
        is_initialized=lambda: True,
        max_memory_allocated=lambda: 1536 * 2**20,
        max_memory_reserved=lambda: 2048 * 2**20,
    )
    monkeypatch.setitem(sys.modules, "torch", SimpleNamespace(cuda=cuda))
    line = jobs.end_line("fit", 1.0, MemoryError())
    assert line.startswith("job end: rule fit failed (MemoryError) after 1.0 s; ")
    assert line.endswith(", CUDA 1536 MiB allocated (2048 MiB reserved)")


def test_a_chained_failure_is_logged_whole(tmp_path):
    path = tmp_path / "job.log"

    def read() -> None:
        raise OSError("features.h5: truncated file")

    def fit() -> None:
        try:
            read()
        except OSError as err:
            raise RuntimeError("cannot read the features of resnet18") from err

    with pytest.raises(RuntimeError), job_context(fake_job(path)):
        fit()
    text = path.read_text()
    assert text.count("Traceback (most recent call last):") == 2
    assert text.index("OSError: features.h5: truncated file") < text.index(
        "The above exception was the direct cause of the following exception:"
    )
    assert "in read\n" in text and "in fit\n" in text
    end = text.splitlines()[-1]
    assert "job end: rule fit_encoding failed (RuntimeError: cannot read the features of " in end


JOB_SCRIPT = """
import sys, time
from types import SimpleNamespace
from encscale.jobs import job_context
job = SimpleNamespace(rule="train_gpt", wildcards={{"run": "w64"}}, params={{}}, log=[sys.argv[1]],
                      threads=1)
with job_context(job, torch_threads={torch_threads}):
    {body}
"""


def run_job(tmp_path, body: str, torch_threads: int = 1, **kwargs) -> subprocess.Popen:
    """A job running ``body`` (one line), as a script file, in a process of its own."""
    script = tmp_path / "job.py"
    script.write_text(JOB_SCRIPT.format(body=body, torch_threads=torch_threads))
    return subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "job.log")],
        stdout=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def test_sigterm_ends_the_job_with_its_end_line(tmp_path):
    """Slurm's time limit and scancel send SIGTERM: the job's log says so, with where it was."""
    proc = run_job(tmp_path, "print('running', flush=True); time.sleep(600)")
    assert proc.stdout.readline().strip() == "running"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    lines = (tmp_path / "job.log").read_text().splitlines()
    assert "job start: rule train_gpt (run=w64)" in lines[0]
    assert "Traceback (most recent call last):" in lines
    assert "print('running', flush=True); time.sleep(600)" in [line.strip() for line in lines]
    assert "job end: rule train_gpt failed (JobTerminated: SIGTERM received" in lines[-1]


def test_torch_imported_inside_the_job_takes_its_threads(tmp_path):
    """Scripts import the package (and torch) inside the job: torch starts with its threads."""
    body = "import torch; print(torch.get_num_threads())"
    env = dict(os.environ, OMP_NUM_THREADS="2")
    proc = run_job(tmp_path, body, torch_threads=1, env=env)
    assert proc.communicate(timeout=60)[0].strip() == "1"
    assert proc.returncode == 0


def test_progress_lines_with_counts_rate_and_time_left(tmp_path):
    path = tmp_path / "job.log"
    with job_context(fake_job(path)):
        for _ in progress(range(4), desc="reading fits", unit="fits", interval=0.02):
            time.sleep(0.03)
        for _ in progress(range(1000), desc="quick", interval=60):
            pass
    lines = [line.split(": ", 1)[1] for line in path.read_text().splitlines()]
    fits = [line for line in lines if line.startswith("reading fits")]
    assert fits[0] == "reading fits: 0/4 fits (0%)"
    assert re.fullmatch(
        r"reading fits: 2/4 fits \(50%\), 00:00 elapsed, \d+\.\d fits/s, ~00:00 left", fits[2]
    )
    assert re.fullmatch(
        r"reading fits: 4/4 fits \(100%\), 00:00 elapsed, \d+\.\d fits/s, done", fits[-1]
    )
    assert len(fits) == 5  # the start, 1/4, 2/4, 3/4 and the end (4/4 once)
    # at most every interval: the start and the end only
    quick = [line for line in lines if line.startswith("quick")]
    assert quick[0] == "quick: 0/1000 it (0%)" and quick[1].startswith("quick: 1000/1000 it")
    assert len(quick) == 2
    assert all(" encscale.progress INFO: " in line for line in path.read_text().splitlines()[1:-1])


def test_progress_counted_by_hand_unknown_total_and_stopped(tmp_path):
    lines = []
    with progress(total=10, desc="clips", unit="clips", interval=0, write=lines.append) as bar:
        bar.update(3)
        bar.set_postfix({"loss": "0.25"}, refresh=False)
        bar.update(2)
    assert lines[0] == "clips: 0/10 clips (0%)"
    assert lines[1].startswith("clips: 3/10 clips (30%)") and "left" in lines[1]
    assert lines[2].endswith("left, loss=0.25")
    assert lines[-1].startswith("clips: 5/10 clips (50%)") and "stopped, loss=0.25" in lines[-1]
    lines.clear()
    for _ in progress(iter("abc"), desc="files", unit="files", write=lines.append):
        pass
    assert lines[0] == "files: 0 files" and lines[-1].startswith("files: 3 files")
    assert lines[-1].endswith("files/s, done")


def test_torch_uses_the_job_threads_inside_the_job(tmp_path):
    before = torch.get_num_threads()
    job = fake_job(tmp_path / "job.log", threads=3)
    with job_context(job, torch_threads=job.threads):
        assert torch.get_num_threads() == 3
    assert torch.get_num_threads() == before
    with job_context(job):  # no torch_threads: torch is left as it is
        assert torch.get_num_threads() == before


def test_a_job_without_torch_does_not_import_it(tmp_path):
    code = (
        "import sys; from types import SimpleNamespace; from encscale.jobs import job_context\n"
        f"job = SimpleNamespace(rule='r', wildcards={{}}, params={{}}, log=[{str(tmp_path)!r}"
        " + '/r.log'], threads=2)\n"
        "with job_context(job): pass\n"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_rule_without_a_log_is_named(tmp_path):
    job = fake_job(tmp_path / "job.log")
    job.log = []
    with pytest.raises(ValueError, match="rule fit_encoding: no log file"), job_context(job):
        pass
