"""Snakemake adapter: every fit's ROI scores in one tidy table."""

from encscale.logs import log_to_file
from encscale.scores import collect_scores, write_tsv

sm = snakemake  # noqa: F821
log_to_file(sm.log[0])
write_tsv(collect_scores(list(sm.input)), sm.output[0])
