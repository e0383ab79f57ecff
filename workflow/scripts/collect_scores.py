"""Snakemake adapter: every fit's ROI scores in one tidy table."""

from encscale.encoding.scores import collect_scores, write_tsv
from encscale.jobs import log_to_file

sm = snakemake  # noqa: F821
log_to_file(sm.log[0])
write_tsv(collect_scores(list(sm.input)), sm.output[0])
