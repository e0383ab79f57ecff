"""Snakemake adapter: stimuli.h5 from an Algonauts 2023 download's images."""

from encscale.jobs import job_context

sm = snakemake  # noqa: F821
with job_context(sm) as provenance:
    from encscale.data import algonauts

    algonauts.prepare_stimuli(
        sm.params.root, sm.params.subjects, sm.output[0], provenance=provenance
    )
