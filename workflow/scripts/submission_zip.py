"""Snakemake adapter: the zip of a submission's subject folders, as the challenge takes it."""

from encscale import algonauts
from encscale.logs import log_to_file

sm = snakemake  # noqa: F821
log_to_file(sm.log[0])
algonauts.zip_submission(list(sm.input), sm.output[0])
