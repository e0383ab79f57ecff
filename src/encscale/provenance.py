"""Provenance: what made each output file, and the report's tables of it.

Every HDF5 file a workflow job writes carries, as root attributes,

- ``encscale_version``: the package version (and ``encscale_git``: the checkout's commit,
  with ``-dirty`` when it had uncommitted changes, where the package runs from one);
- ``encscale_rule`` and ``encscale_wildcards``: the job that wrote it;
- ``encscale_config``: the config fragment the rule read (its ``params``), as JSON;
- ``encscale_software``: the versions of the libraries the job had imported when it wrote
  the file (python, numpy, h5py, torch, timm, …), with ``cuda`` and ``gpu`` (the device's
  name) where torch could use a GPU, as JSON.

The report's Provenance section is made of two tables: :func:`software_table` (software
that made the outputs, from these attributes) and :func:`runtime_table` (rule runtimes, from
Snakemake's benchmark files).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterable, Mapping
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

import h5py
import pandas as pd

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
# Columns of a Snakemake benchmark file kept in the runtimes table.
BENCHMARK_COLUMNS = ["s", "max_rss", "cpu_time"]


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
    # read-only without HDF5's file locking, as encscale.io.read_h5 opens (this base module
    # cannot import it)
    with h5py.File(path, "r", locking=False) as h5:
        attrs = {k[len(PREFIX) :]: h5.attrs[k] for k in h5.attrs if k.startswith(PREFIX)}
    if "version" not in attrs:
        raise KeyError(f"{path}: no provenance attributes ({PREFIX}version …)")
    out = {key: str(value) for key, value in attrs.items()}
    for key in ("wildcards", "config", "software"):
        out[key] = json.loads(out[key])
    return out


def software_table(
    paths: Iterable[str | Path], workflow_versions: Mapping[str, str] | None = None
) -> pd.DataFrame:
    """Software that made the files: one row per rule × package × version, with a file count.

    ``workflow_versions`` (e.g. :func:`software_versions` in a job of the
    workflow: Snakemake's among them) are added as rule ``workflow`` with ``n_files`` 0.
    """
    rows = []
    for path in paths:
        prov = read_provenance(path)
        versions = dict(prov["software"], encscale=prov["version"])
        if "git" in prov:
            versions["encscale (git)"] = prov["git"]
        rows += [(prov["rule"], package, version) for package, version in versions.items()]
    table = pd.DataFrame(rows, columns=["rule", "package", "version"])
    table = (
        table.groupby(["rule", "package", "version"], sort=True)
        .size()
        .rename("n_files")
        .reset_index()
    )
    workflow = pd.DataFrame(
        [("workflow", p, v, 0) for p, v in sorted((workflow_versions or {}).items())],
        columns=table.columns,
    )
    return pd.concat([workflow, table], ignore_index=True)


def runtime_table(benchmarks: Mapping[str, Iterable[str | Path]]) -> pd.DataFrame:
    """Per rule, from its Snakemake benchmark files: jobs, total/median/max wall time (s),
    peak resident memory (MB) and total CPU time (s)."""
    rows = []
    for rule, paths in benchmarks.items():
        for path in paths:
            bench = pd.read_csv(path, sep="\t")
            missing = set(BENCHMARK_COLUMNS) - set(bench.columns)
            if missing or bench.empty:
                raise ValueError(
                    f"{path}: not a Snakemake benchmark file (needs a row and columns "
                    f"{', '.join(BENCHMARK_COLUMNS)})"
                )
            rows.append({"rule": rule, **bench[BENCHMARK_COLUMNS].mean().to_dict()})
    table = pd.DataFrame(rows, columns=["rule", *BENCHMARK_COLUMNS])
    return (
        table.groupby("rule", sort=False)
        .agg(
            jobs=("s", "size"),
            total_s=("s", "sum"),
            median_s=("s", "median"),
            max_s=("s", "max"),
            max_rss_mb=("max_rss", "max"),
            cpu_time_s=("cpu_time", "sum"),
        )
        .reset_index()
    )


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)
