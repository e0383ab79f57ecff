"""Snakemake adapter: study 1, Fig. 1 (accuracy against training size per ROI)."""

import pandas as pd

from encscale.figures import plot_data_scaling
from encscale.logs import log_to_file
from encscale.scaling import data_scaling_scores

sm = snakemake  # noqa: F821
log_to_file(sm.log[0])
scores = pd.read_csv(sm.input.scores, sep="\t", dtype={"subject": str, "model": str})
fits = pd.read_csv(sm.input.fits, sep="\t")
rows = data_scaling_scores(scores, sm.params.model, sm.params.atlas)
plot_data_scaling(rows, fits, sm.params.model, sm.output[0])
