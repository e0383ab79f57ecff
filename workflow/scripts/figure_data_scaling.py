"""Snakemake adapter: study 1, Fig. 1 (accuracy against training size per ROI, with laws)."""

from encscale.figures.images import plot_data_scaling
from encscale.jobs import log_to_file
from encscale.scaling.analysis import ensemble_rows, read_scores, read_table, scaling_rows

sm = snakemake  # noqa: F821
log_to_file(sm.log[0])
scores = read_scores(sm.input.scores)
model, atlas = sm.params.model, sm.params.atlas
plot_data_scaling(
    scaling_rows(scores, atlas, model=model),
    read_table(sm.input.fits),
    read_table(sm.input.extrapolation).query("analysis == 'data'"),
    ensemble_rows(scores, atlas) if model != "ensemble" else scores.iloc[:0],
    model,
    sm.output.png,
    sm.output.svg,
)
