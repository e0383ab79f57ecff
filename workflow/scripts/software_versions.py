"""Snakemake adapter: the software that made the study's HDF5 outputs, from their attributes."""

from encscale.jobs import job_context

sm = snakemake  # noqa: F821
with job_context(sm):
    from encscale.io import write_tsv
    from encscale.provenance import software_table, software_versions

    write_tsv(software_table(list(sm.input), software_versions()), sm.output[0])
