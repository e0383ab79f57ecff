"""The Provenance section of the report: software that made the outputs, rule runtimes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from encscale.provenance import read_provenance

# Columns of a Snakemake benchmark file kept in the runtimes table.
BENCHMARK_COLUMNS = ["s", "max_rss", "cpu_time"]


def software_table(
    paths: Iterable[str | Path], workflow_versions: Mapping[str, str] | None = None
) -> pd.DataFrame:
    """Software that made the files: one row per rule × package × version, with a file count.

    ``workflow_versions`` (e.g. :func:`encscale.provenance.software_versions` in a job of the
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
