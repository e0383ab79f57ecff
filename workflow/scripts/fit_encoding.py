"""Snakemake adapter: one voxelwise encoding fit."""

import torch

from encscale.encoding import alpha_grid, fit_encoding
from encscale.logs import log_to_file

sm = snakemake  # noqa: F821
log_to_file(sm.log[0])
torch.set_num_threads(sm.threads)
a = sm.params.alphas
fit_encoding(
    sm.input.responses,
    sm.input.features,
    sm.output[0],
    size=int(sm.wildcards.size),
    seed=int(sm.wildcards.seed),
    n_folds=sm.params.n_folds,
    alphas=alpha_grid(a["log10_min"], a["log10_max"], a["num"]),
    scoring=sm.params.scoring,
    subsample_mode=sm.params.subsample,
    device=sm.params.device,
)
