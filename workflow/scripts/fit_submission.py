"""Snakemake adapter: a submission's refit of one subject × model on every training image."""

from encscale.jobs import job_context

sm = snakemake  # noqa: F821
with job_context(sm, torch_threads=sm.threads) as provenance:
    from encscale.encoding.subject import fit_submission_from_config

    fit_submission_from_config(
        sm.input.responses,
        sm.input.features,
        sm.output[0],
        settings=sm.params.settings,
        declared_mb=sm.resources.mem_mb,
        provenance=provenance,
    )
