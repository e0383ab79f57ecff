"""Snakemake adapter: write the simulated CNeuroMod dataset of the video demo."""

from encscale.jobs import log_to_file
from encscale.simulate.movies import simulate_movies

sm = snakemake  # noqa: F821
log_to_file(sm.log[0])
simulate_movies(sm.params.root, sm.params.sim)
