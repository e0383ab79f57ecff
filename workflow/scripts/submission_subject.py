"""Snakemake adapter: one subject's Algonauts 2023 submission files from one or more fits."""

from pathlib import Path

from encscale.jobs import job_context

sm = snakemake  # noqa: F821
with job_context(sm):
    from encscale.data import algonauts

    algonauts.write_submission(list(sm.input.fits), sm.input.responses, Path(sm.output.lh).parent)
