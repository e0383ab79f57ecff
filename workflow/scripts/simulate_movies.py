"""Snakemake adapter: write the simulated CNeuroMod dataset of the video demo."""

from encscale.jobs import job_context
from encscale.simulate.movies import simulate_movies

sm = snakemake  # noqa: F821
with job_context(sm):
    simulate_movies(sm.params.root, sm.params.sim)
