"""Snakemake adapter: the ensemble of several models' fits of one subject, size and draw."""

from encscale.jobs import job_context

sm = snakemake  # noqa: F821
with job_context(sm) as provenance:
    from encscale.encoding.ensemble import ensemble_fit

    ensemble_fit(list(sm.input.members), sm.input.responses, sm.output[0], provenance=provenance)
