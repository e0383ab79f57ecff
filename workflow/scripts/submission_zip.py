"""Snakemake adapter: the zip of a submission's subject folders, as the challenge takes it."""

from encscale.data import algonauts
from encscale.jobs import log_to_file

sm = snakemake  # noqa: F821
log_to_file(sm.log[0])
algonauts.zip_submission(list(sm.input), sm.output[0])
