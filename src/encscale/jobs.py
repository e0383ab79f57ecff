"""What every workflow job does around its one call into the package: its log file (with
timestamps, the ``encscale`` loggers and Python warnings, and the traceback of a failure),
torch's thread count, and its provenance.

A Snakemake script is then::

    with job_context(snakemake, torch_threads=snakemake.threads) as provenance:
        fit_encoding(..., provenance=provenance)
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from encscale.provenance import job_provenance

log = logging.getLogger(__name__)
LOGGERS = ("encscale", "py.warnings")
LOG_FORMAT = "%(asctime)s %(name)s %(levelname)s: %(message)s"


@contextmanager
def log_to_file(path: str | Path) -> Iterator[None]:
    """Inside the block, send the ``encscale`` loggers and Python warnings to ``path``
    (appending), at INFO; the loggers and warnings are restored after it."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    loggers = [logging.getLogger(name) for name in LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    logging.captureWarnings(True)
    try:
        yield
    finally:
        logging.captureWarnings(False)
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)
        handler.close()


@contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    """Torch's intra-op thread count set to ``n`` inside the block. Torch is never imported
    here: with ``n`` None, or in a job whose package code did not load torch, it is untouched."""
    torch = sys.modules.get("torch")
    if n is None or torch is None:
        yield
        return

    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextmanager
def job_context(snakemake: Any, *, torch_threads: int | None = None) -> Iterator[dict[str, Any]]:
    """The setting of one Snakemake job; yields its provenance
    (:func:`encscale.provenance.job_provenance`).

    Inside the block the ``encscale`` loggers and warnings go to the rule's log
    (``snakemake.log[0]``, :func:`log_to_file`) and torch uses ``torch_threads`` threads
    (None, for jobs without torch). An exception leaving the block
    is written with its traceback to the log, then raised again.
    """
    if not snakemake.log:
        raise ValueError(f"rule {snakemake.rule}: no log file to write the job's log to")
    with log_to_file(snakemake.log[0]):
        try:
            with _torch_threads(torch_threads):
                yield job_provenance(snakemake)
        except Exception:
            log.exception("rule %s failed", snakemake.rule)
            raise
