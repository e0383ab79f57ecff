"""Snakemake adapter: write the simulated NSD of the demo study."""

from encscale.data import nsd
from encscale.jobs import log_to_file
from encscale.provenance import job_provenance
from encscale.simulate.nsd import simulate_nsd

sm = snakemake  # noqa: F821
log_to_file(sm.log[0])
simulate_nsd(
    nsd.root_of_expdesign(sm.output.design),
    dict(sm.params.sim, beta_version=sm.params.beta_version),
    provenance=job_provenance(sm),
)
