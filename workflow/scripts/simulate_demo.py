"""Snakemake adapter: write the simulated NSD of the demo study."""

from pathlib import Path

from encscale.logs import log_to_file
from encscale.simulate import simulate_nsd

log_to_file(snakemake.log[0])  # noqa: F821
root = Path(snakemake.output.design).parents[3]  # noqa: F821
simulate_nsd(root, dict(snakemake.params.sim, beta_version=snakemake.params.beta_version))  # noqa: F821
