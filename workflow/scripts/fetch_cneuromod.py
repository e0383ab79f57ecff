"""Snakemake adapter: the CNeuroMod (Algonauts 2025) files into cneuromod.root, via DataLad."""

from encscale.jobs import job_context

sm = snakemake  # noqa: F821
with job_context(sm):
    from encscale.data.datalad_fetch import fetch_dataset

    fetch_dataset(sm.params.source, sm.params.root, list(sm.params.paths), jobs=sm.params.jobs)
