"""Snakemake adapter: study 1, Fig. 2 (accuracy against parameter count per ROI, with laws)."""

from encscale.figures.images import plot_param_scaling
from encscale.jobs import log_to_file
from encscale.scaling.analysis import ensemble_rows, read_scores, read_table, scaling_rows

sm = snakemake  # noqa: F821
log_to_file(sm.log[0])
scores = read_scores(sm.input.scores)
size, atlas = sm.params.size, sm.params.atlas
plot_param_scaling(
    scaling_rows(scores, atlas, size=size),
    read_table(sm.input.fits),
    ensemble_rows(scores, atlas, size=size),
    size,
    sm.output.png,
    sm.output.svg,
)
