"""Snakemake adapter: ROI scores of one fit."""

from encscale.encoding.scores import score_fit, write_tsv
from encscale.jobs import log_to_file

sm = snakemake  # noqa: F821
log_to_file(sm.log[0])
write_tsv(score_fit(sm.input.fit, sm.input.responses), sm.output[0])
