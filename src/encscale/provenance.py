"""Provenance: what made each output file (its tables for the report: :mod:`encscale.audit`).

Every HDF5 file a workflow job writes carries, as root attributes,

- ``encscale_version``: the package version (and ``encscale_git``: the checkout's commit,
  with ``-dirty`` when it had uncommitted changes, where the package runs from one);
- ``encscale_rule`` and ``encscale_wildcards``: the job that wrote it;
- ``encscale_config``: the config fragment the rule read (its ``params``), as JSON;
- ``encscale_software``: the versions of the libraries the job had imported when it wrote
  the file (python, numpy, h5py, torch, timm, …), with ``cuda`` and ``gpu`` (the device's
  name) where torch could use a GPU, as JSON.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

import h5py

import encscale

PREFIX = "encscale_"
# Distributions whose versions are recorded when their module is imported in the job.
TRACKED = {
    "numpy": "numpy",
    "scipy": "scipy",
    "h5py": "h5py",
    "pandas": "pandas",
    "nibabel": "nibabel",
    "nilearn": "nilearn",
    "PIL": "pillow",
    "torch": "torch",
    "torchvision": "torchvision",
    "timm": "timm",
    "himalaya": "himalaya",
    "sklearn": "scikit-learn",
    "huggingface_hub": "huggingface_hub",
    "boto3": "boto3",
    "av": "av",
    "snakemake": "snakemake",
}


def job_provenance(snakemake: Any) -> dict[str, Any]:
    """The rule, wildcards and params (the config fragment it read) of a Snakemake job."""
    return {
        "rule": snakemake.rule,
        "wildcards": dict(snakemake.wildcards.items()),
        "config": dict(snakemake.params.items()),
    }


def software_versions() -> dict[str, str]:
    """Versions of python, encscale and the tracked libraries this process has imported.

    With torch imported and a GPU usable: ``cuda`` (torch's CUDA runtime) and ``gpu``.
    """
    versions = {"python": sys.version.split()[0], "encscale": encscale.__version__}
    for module, dist in TRACKED.items():
        if module in sys.modules:
            try:
                versions[dist] = metadata.version(dist)
            except metadata.PackageNotFoundError:
                versions[dist] = str(getattr(sys.modules[module], "__version__", "unknown"))
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        versions["cuda"] = str(torch.version.cuda)
        versions["gpu"] = torch.cuda.get_device_name(0)
    return versions


@cache
def git_describe() -> str | None:
    """The commit of the checkout the package runs from (``-dirty`` if modified), else None."""
    src = Path(encscale.__file__).resolve().parent
    try:
        head = subprocess.run(
            ["git", "-C", str(src), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(src), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("-dirty" if dirty else "")


def write_provenance(h5: h5py.File, provenance: Mapping[str, Any]) -> None:
    """Record the package version, ``provenance`` (:func:`job_provenance`) and software."""
    attrs = {
        "version": encscale.__version__,
        "rule": provenance.get("rule", ""),
        "wildcards": _json(provenance.get("wildcards", {})),
        "config": _json(provenance.get("config", {})),
        "software": _json(software_versions()),
    }
    commit = git_describe()
    if commit is not None:
        attrs["git"] = commit
    h5.attrs.update({PREFIX + key: value for key, value in attrs.items()})


def read_provenance(path: str | Path) -> dict[str, Any]:
    """The provenance attributes of an HDF5 file, JSON decoded; a KeyError names the file."""
    with h5py.File(path, "r") as h5:
        attrs = {k[len(PREFIX) :]: h5.attrs[k] for k in h5.attrs if k.startswith(PREFIX)}
    if "version" not in attrs:
        raise KeyError(f"{path}: no provenance attributes ({PREFIX}version …)")
    out = {key: str(value) for key, value in attrs.items()}
    for key in ("wildcards", "config", "software"):
        out[key] = json.loads(out[key])
    return out


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)
