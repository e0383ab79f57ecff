"""Snakemake adapter: per-rule runtimes and peak memory from the heavy rules' benchmarks."""

from encscale.audit import runtime_table
from encscale.encoding.scores import write_tsv
from encscale.jobs import log_to_file

sm = snakemake  # noqa: F821
log_to_file(sm.log[0])
write_tsv(runtime_table({rule: list(files) for rule, files in sm.input.items()}), sm.output[0])
