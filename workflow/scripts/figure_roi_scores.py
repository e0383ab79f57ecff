"""Snakemake adapter: study 1, Fig. 3 (noise-normalised score per ROI and subject)."""

import pandas as pd

from encscale.figures import plot_roi_scores
from encscale.logs import log_to_file

sm = snakemake  # noqa: F821
log_to_file(sm.log[0])
final = sm.params.final
scores = pd.read_csv(sm.input.scores, sep="\t", dtype={"subject": str, "model": str})
rows = scores[(scores["model"] == final["model"]) & (scores["size"] == final["size"])]
plot_roi_scores(rows, final["model"], final["size"], final["atlases"], sm.output[0])
