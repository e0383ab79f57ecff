"""Snakemake adapter: the video study's figures from the runs table and the encoding scores."""

from encscale.jobs import job_context

sm = snakemake  # noqa: F821
with job_context(sm):
    from encscale.figures.video import video_figures

    video_figures(sm.input.runs, sm.input.scores, sm.params.base, dict(sm.output.items()))
