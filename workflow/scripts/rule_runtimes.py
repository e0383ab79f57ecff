"""Snakemake adapter: per-rule runtimes and peak memory from the heavy rules' benchmarks."""

from encscale.io import write_tsv
from encscale.jobs import job_context
from encscale.provenance import runtime_table

sm = snakemake  # noqa: F821
with job_context(sm):
    write_tsv(runtime_table({rule: list(files) for rule, files in sm.input.items()}), sm.output[0])
