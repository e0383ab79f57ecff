"""Snakemake adapter: one voxelwise encoding fit."""

from encscale.jobs import job_context

sm = snakemake  # noqa: F821
with job_context(sm, torch_threads=sm.threads) as provenance:
    from encscale.encoding.fit import fit_encoding_from_config

    fit_encoding_from_config(
        sm.input.responses,
        sm.input.features,
        sm.output[0],
        size=sm.wildcards.size,
        seed=sm.wildcards.seed,
        settings=sm.params.settings,
        provenance=provenance,
    )
