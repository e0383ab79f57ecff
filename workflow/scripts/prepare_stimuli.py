"""Snakemake adapter: stimuli.h5 from the images the study's subjects saw."""

from encscale.jobs import job_context

sm = snakemake  # noqa: F821
with job_context(sm) as provenance:
    from encscale.data.stimuli import prepare_study_stimuli

    prepare_study_stimuli(
        sm.input.design,
        sm.params.subjects,
        sm.output[0],
        remote=sm.params.remote,
        key=sm.params.key,
        provenance=provenance,
        view=sm.params.images == "view",
    )
