"""Snakemake adapter: write the simulated CNeuroMod dataset of the video demo."""

from encscale.jobs import job_context

sm = snakemake  # noqa: F821
with job_context(sm):
    from encscale.simulate.movies import simulate_movies

    simulate_movies(sm.params.root, sm.params.sim)
