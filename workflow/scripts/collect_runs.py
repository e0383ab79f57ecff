"""Snakemake adapter: one row per GPT-2 run (grid point, size, compute, speed, losses)."""

from encscale.encoding.scores import write_tsv
from encscale.jobs import log_to_file
from encscale.video.runs import runs_table

sm = snakemake  # noqa: F821
log_to_file(sm.log[0])
write_tsv(runs_table(sm.params.runs, list(sm.input.logs), list(sm.input.models)), sm.output[0])
