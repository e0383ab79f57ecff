"""Snakemake adapter: one row per GPT-2 run (grid point, size, compute, speed, losses)."""

from encscale.jobs import job_context

sm = snakemake  # noqa: F821
with job_context(sm):
    from encscale.io import write_tsv
    from encscale.video.runs import runs_table

    write_tsv(runs_table(sm.params.runs, list(sm.input.logs), list(sm.input.models)), sm.output[0])
