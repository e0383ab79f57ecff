"""Snakemake adapter: one subject's Algonauts 2023 submission files from one or more fits."""

from pathlib import Path

from encscale.data import algonauts
from encscale.jobs import job_context

sm = snakemake  # noqa: F821
with job_context(sm):
    algonauts.write_submission(list(sm.input.fits), sm.input.responses, Path(sm.output.lh).parent)
