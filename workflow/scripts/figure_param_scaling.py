"""Snakemake adapter: study 1, Fig. 2 (accuracy against parameter count per ROI, with laws)."""

from encscale.jobs import job_context

sm = snakemake  # noqa: F821
with job_context(sm):
    from encscale.figures.images import figure_param_scaling

    figure_param_scaling(
        sm.input.scores,
        sm.input.fits,
        sm.params.atlas,
        sm.params.size,
        sm.output.png,
        sm.output.svg,
        families=sm.params.families,
    )
