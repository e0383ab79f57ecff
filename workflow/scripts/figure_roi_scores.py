"""Snakemake adapter: study 1, Fig. 3 (noise-normalised score per ROI and subject)."""

from encscale.figures.images import plot_roi_scores
from encscale.jobs import log_to_file
from encscale.scaling.analysis import ensemble_rows, read_scores

sm = snakemake  # noqa: F821
log_to_file(sm.log[0])
final = sm.params.final
scores = read_scores(sm.input.scores)
rows = scores[(scores["model"] == final["model"]) & (scores["size"] == final["size"])]
ensemble = ensemble_rows(scores, None, size=final["size"])
if final["model"] == "ensemble":
    ensemble = ensemble.iloc[:0]
plot_roi_scores(
    rows, ensemble, final["model"], final["size"], final["atlases"], sm.output.png, sm.output.svg
)
