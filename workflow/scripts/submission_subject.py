"""Snakemake adapter: one subject's Algonauts 2023 submission files from one or more fits."""

from pathlib import Path

from encscale.data import algonauts
from encscale.jobs import log_to_file

sm = snakemake  # noqa: F821
log_to_file(sm.log[0])
algonauts.write_submission(list(sm.input.fits), sm.input.responses, Path(sm.output.lh).parent)
