"""Snakemake adapter: log-linear data- and parameter-scaling fits per ROI."""

import pandas as pd

from encscale.logs import log_to_file
from encscale.scaling import data_scaling_scores, fit_scaling, param_scaling_scores
from encscale.scores import write_tsv

sm = snakemake  # noqa: F821
log_to_file(sm.log[0])
cfg = sm.params.scaling
scores = pd.read_csv(sm.input[0], sep="\t", dtype={"subject": str, "model": str})
boot = dict(n_boot=cfg["n_bootstrap"], seed=cfg["seed"])
data = data_scaling_scores(scores, cfg["data_model"], cfg["atlas"])
write_tsv(fit_scaling(data, "size", **boot), sm.output.data)
param = param_scaling_scores(scores, cfg["param_size"], cfg["atlas"])
write_tsv(fit_scaling(param, "n_params", **boot), sm.output.param)
