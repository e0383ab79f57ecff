"""Snakemake adapter: the CNeuroMod (Algonauts 2025) DataLad dataset's file tree into
cneuromod.root, without file content, so that the study can be planned."""

from encscale.jobs import job_context

sm = snakemake  # noqa: F821
with job_context(sm):
    from encscale.data.datalad_fetch import install_dataset

    install_dataset(sm.params.source, sm.params.root)
