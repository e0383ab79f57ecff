"""Snakemake adapter: per-rule runtimes and peak memory from the heavy rules' benchmarks."""

from encscale.jobs import job_context

sm = snakemake  # noqa: F821
with job_context(sm):
    from encscale.io import write_tsv
    from encscale.provenance import runtime_table

    write_tsv(runtime_table({rule: list(files) for rule, files in sm.input.items()}), sm.output[0])
