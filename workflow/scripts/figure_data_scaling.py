"""Snakemake adapter: study 1, Fig. 1 (accuracy against training size per ROI, with laws)."""

from encscale.jobs import job_context

sm = snakemake  # noqa: F821
with job_context(sm):
    from encscale.figures.images import figure_data_scaling

    figure_data_scaling(
        sm.input.scores,
        sm.input.fits,
        sm.input.extrapolation,
        sm.params.atlas,
        sm.params.model,
        sm.output.png,
        sm.output.svg,
        label=sm.params.get("label"),
    )
