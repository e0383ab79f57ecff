"""Snakemake adapter: a lab's own stimuli.h5 or responses file, checked, into the study."""

from encscale.jobs import job_context

sm = snakemake  # noqa: F821
with job_context(sm) as provenance:
    from encscale.data.prepared import import_responses, import_stimuli

    if "responses" in sm.input.keys():
        import_responses(sm.input.responses, sm.input.stimuli, sm.output[0], provenance)
    else:
        import_stimuli(sm.input.stimuli, sm.output[0], provenance)
