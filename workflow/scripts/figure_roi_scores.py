"""Snakemake adapter: study 1, Fig. 3 (noise-normalised score per ROI and subject)."""

from encscale.jobs import job_context

sm = snakemake  # noqa: F821
final = sm.params.final
with job_context(sm):
    from encscale.figures.images import figure_roi_scores

    figure_roi_scores(
        sm.input.scores,
        final["model"],
        final["size"],
        final["atlases"],
        sm.output.png,
        sm.output.svg,
    )
