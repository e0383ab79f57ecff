"""The workflow jobs' setting: log file, torch threads, provenance, failures in the log."""

from __future__ import annotations

import logging
import subprocess
import sys
import warnings
from types import SimpleNamespace

import pytest
import torch

from encscale.jobs import job_context


def fake_job(log_path, threads: int = 1) -> SimpleNamespace:
    """What a Snakemake script sees of its job (``snakemake``)."""
    return SimpleNamespace(
        rule="fit_encoding",
        wildcards={"subject": "subj01", "size": "100"},
        params={"settings": {"n_folds": 5}},
        log=[str(log_path)],
        threads=threads,
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
    assert lines[0].endswith("encscale.encoding.fit INFO: fold 2 of 5")
    assert "py.warnings WARNING" in lines[1] and "ill-conditioned Gram matrix" in lines[1]
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
