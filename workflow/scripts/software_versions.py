"""Snakemake adapter: the software that made the study's HDF5 outputs, from their attributes."""

from encscale.audit import software_table
from encscale.encoding.scores import write_tsv
from encscale.jobs import log_to_file
from encscale.provenance import software_versions

sm = snakemake  # noqa: F821
log_to_file(sm.log[0])
write_tsv(software_table(list(sm.input), software_versions()), sm.output[0])
