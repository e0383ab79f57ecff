"""Snakemake adapter: one subject's responses file from NSD betas."""

from encscale.jobs import job_context

sm = snakemake  # noqa: F821
with job_context(sm) as provenance:
    from encscale.data import nsd
    from encscale.data.prepare import prepare_subject

    prepare_subject(
        nsd.root_of_expdesign(sm.input.design),
        sm.wildcards.subject,
        sm.input.stimuli,
        sm.output[0],
        beta_version=sm.params.beta_version,
        atlases=sm.params.atlases,
        mask_roi=sm.params.mask_roi,
        n_sessions=sm.params.n_sessions,
        provenance=provenance,
    )
