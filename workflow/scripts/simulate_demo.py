"""Snakemake adapter: write the simulated NSD of the demo study."""

from encscale.jobs import job_context

sm = snakemake  # noqa: F821
with job_context(sm) as provenance:
    from encscale.data import nsd
    from encscale.simulate.nsd import simulate_nsd

    simulate_nsd(
        nsd.root_of_expdesign(sm.output.design),
        dict(sm.params.sim, beta_version=sm.params.beta_version),
        provenance=provenance,
    )
