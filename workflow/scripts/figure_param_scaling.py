"""Snakemake adapter: study 1, Fig. 2 (accuracy against parameter count per ROI)."""

import pandas as pd

from encscale.figures import plot_param_scaling
from encscale.logs import log_to_file
from encscale.scaling import param_scaling_scores

sm = snakemake  # noqa: F821
log_to_file(sm.log[0])
scores = pd.read_csv(sm.input.scores, sep="\t", dtype={"subject": str, "model": str})
rows = param_scaling_scores(scores, sm.params.size, sm.params.atlas)
plot_param_scaling(rows, sm.params.size, sm.output[0])
