"""Snakemake adapter: one row per GPT-2 run (grid point, size, compute, speed, losses)."""

from encscale.gpt_runs import runs_table
from encscale.logs import log_to_file
from encscale.scores import write_tsv

sm = snakemake  # noqa: F821
log_to_file(sm.log[0])
write_tsv(runs_table(sm.params.runs, list(sm.input.logs), list(sm.input.models)), sm.output[0])
