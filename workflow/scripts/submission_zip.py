"""Snakemake adapter: the zip of a submission's subject folders, as the challenge takes it."""

from encscale.jobs import job_context

sm = snakemake  # noqa: F821
with job_context(sm):
    from encscale.data import algonauts

    algonauts.zip_submission(list(sm.input), sm.output[0])
