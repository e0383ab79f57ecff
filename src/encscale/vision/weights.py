"""Fetch a registry model's pretrained weights into a local file, verified, with provenance.

``fetch_weights`` resolves where timm would load a model's weights from (its pretrained
config's Hugging Face repository and file), downloads that file with ``huggingface_hub``
(which retries transient errors), checks its size and SHA-256 against the hub's metadata
(the ETag of a large file is its SHA-256), and writes it under its final name only when
verified, with a JSON side file recording repository, revision, file name, size and hash.
A registry entry then points at it with ``weights: file`` and ``weights_file``, so the
weights are a tracked input of the extraction job.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from encscale.io import PathLike, atomic_path
from encscale.torchtools import import_timm

CANDIDATE_FILES = ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin")


def hub_source(timm_name: str) -> tuple[str, list[str]]:
    """The Hugging Face repository of a timm model's pretrained weights, and file names to try."""
    timm = import_timm()
    cfg = timm.models.get_pretrained_cfg(timm_name)
    if cfg is None or not cfg.hf_hub_id:
        raise ValueError(f"timm '{timm_name}' has no Hugging Face weights in its pretrained config")
    files = [cfg.hf_hub_filename] if cfg.hf_hub_filename else []
    return cfg.hf_hub_id, [*files, *(f for f in CANDIDATE_FILES if f not in files)]


def sha256_of(path: PathLike, block: int = 2**22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_weights(
    spec: dict[str, Any], out_path: PathLike, revision: str | None = None
) -> dict[str, Any]:
    """Download the weights of registry entry ``spec`` (a timm model) to ``out_path``.

    Only files of ``out_path``'s format (.safetensors or .bin) are considered, since the
    loader reads the format from the suffix. Returns the provenance record, also written to
    ``<out_path>.json``. Raises with the
    model, repository and file named when nothing is found, or when the download's size or
    SHA-256 differs from the hub's.
    """
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url
    from huggingface_hub.utils import EntryNotFoundError

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    repo, candidates = hub_source(spec["timm"])
    candidates = [f for f in candidates if Path(f).suffix == out_path.suffix]  # same format
    for filename in candidates:
        try:
            meta = get_hf_file_metadata(hf_hub_url(repo, filename, revision=revision))
        except EntryNotFoundError:
            continue
        break
    else:
        raise FileNotFoundError(f"{repo}: none of {candidates} exists (timm '{spec['timm']}')")
    with tempfile.TemporaryDirectory(dir=out_path.parent, prefix=f".{out_path.name}.") as tmp:
        local = Path(hf_hub_download(repo, filename, revision=meta.commit_hash, local_dir=tmp))
        size, digest = local.stat().st_size, sha256_of(local)
        expected = (meta.etag or "").strip('"').removeprefix("W/").strip('"')
        if meta.size is not None and size != meta.size:
            raise OSError(f"{repo}/{filename}: downloaded {size} bytes, the hub lists {meta.size}")
        if len(expected) == 64 and digest != expected:
            raise OSError(f"{repo}/{filename}: SHA-256 {digest} differs from the hub's {expected}")
        record = dict(
            timm=spec["timm"],
            repository=repo,
            revision=meta.commit_hash,
            file=filename,
            size=size,
            sha256=digest,
            fetched=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        with atomic_path(out_path) as dest:
            shutil.move(local, dest)
    with atomic_path(out_path.with_name(out_path.name + ".json")) as dest:
        dest.write_text(json.dumps(record, indent=2) + "\n")
    return record
