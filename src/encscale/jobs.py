"""Logging for workflow jobs: one log file per job, with timestamps."""

from __future__ import annotations

import logging
from pathlib import Path


def log_to_file(path: str | Path) -> None:
    """Send the ``encscale`` loggers and Python warnings to ``path`` (appending), at INFO."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
    for name in ("encscale", "py.warnings"):
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    logging.captureWarnings(True)
