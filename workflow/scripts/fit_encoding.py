"""Snakemake adapter: one voxelwise encoding fit."""

import torch

from encscale.encoding.fit import alpha_grid, fit_encoding
from encscale.jobs import log_to_file
from encscale.provenance import job_provenance

sm = snakemake  # noqa: F821
log_to_file(sm.log[0])
torch.set_num_threads(sm.threads)
cfg = sm.params.settings
a = cfg["alphas"]
fit_encoding(
    sm.input.responses,
    sm.input.features,
    sm.output[0],
    size=None if sm.wildcards.size == "all" else int(sm.wildcards.size),  # all: every row
    seed=int(sm.wildcards.seed),
    n_folds=cfg["n_folds"],
    alphas=alpha_grid(a["log10_min"], a["log10_max"], a["num"]),
    scoring=cfg["scoring"],
    subsample_mode=cfg["subsample"],
    device=cfg["device"],
    provenance=job_provenance(sm),
)
