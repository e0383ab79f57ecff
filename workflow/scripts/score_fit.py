"""Snakemake adapter: ROI scores of one fit."""

from encscale.encoding.scores import score_fit
from encscale.io import write_tsv
from encscale.jobs import job_context

sm = snakemake  # noqa: F821
with job_context(sm):
    write_tsv(score_fit(sm.input.fit, sm.input.responses), sm.output[0])
