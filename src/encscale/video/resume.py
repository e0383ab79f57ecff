"""Resumable training, one mechanism for the tokenizer (:func:`encscale.video.vqvae.train_vqvae`)
and the GPT-2 runs (:func:`encscale.video.gpt.train_gpt`).

A run keeps a checkpoint beside its output, rewritten atomically (:func:`encscale.io.atomic_path`)
every few steps: everything the next step depends on (weights, optimiser, random generator,
the step reached, the log so far) and the run's *signature*, a hash of the settings that define
it. A rerun resumes only from a checkpoint with its own signature, so a checkpoint left by other
settings (or other input files, when the caller puts their identity in the signature) is
ignored and the run starts afresh. Resumed on the same device and thread count, a run ends in
exactly the state of one never interrupted.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from encscale.io import PathLike, atomic_path

log = logging.getLogger(__name__)


def signature(payload: Mapping[str, Any]) -> str:
    """A short hash of ``payload`` (JSON-serialisable; other values by their ``str``): what a
    checkpoint must match to be resumed."""
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def save_resume_checkpoint(path: PathLike, signature: str, **state: Any) -> None:
    """Write ``state`` (tensors, state dicts, numbers, strings, lists and dicts of them) with
    ``signature`` to ``path``, atomically: a killed write leaves the previous checkpoint."""
    with atomic_path(path) as tmp:
        torch.save(dict(state, signature=signature), tmp)


def load_resume_checkpoint(path: PathLike, signature: str) -> dict[str, Any] | None:
    """The checkpoint at ``path`` if it belongs to the run ``signature``, else None (logged)."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated file from a killed write of an older version
        log.warning("%s: unreadable checkpoint (%s); starting afresh", path, err)
        return None
    if not isinstance(ckpt, dict) or ckpt.get("signature") != signature:
        log.warning("%s: checkpoint of other settings; starting afresh", path)
        return None
    return ckpt
