"""Snakemake adapter: data- and parameter-scaling laws per ROI, and extrapolations."""

import pandas as pd

from encscale.encoding.scores import write_tsv
from encscale.jobs import log_to_file
from encscale.scaling.analysis import load_curves, scaling_tables

sm = snakemake  # noqa: F821
log_to_file(sm.log[0])
cfg = sm.params.scaling
responses = dict(zip(sm.params.subjects, sm.input.responses, strict=True))
settings = dict(n_boot=cfg["n_bootstrap"], seed=cfg["seed"], fractions=cfg["ceiling_fractions"])
extrapolations = []
for analysis, x_attr in (("data", "size"), ("param", "n_params")):
    xs, curves, known = load_curves(sm.input[analysis], responses, x_attr, cfg["atlas"])
    fits, extrapolation = scaling_tables(analysis, xs, curves, ceiling_known=known, **settings)
    write_tsv(fits, sm.output[analysis])
    extrapolations.append(extrapolation)
write_tsv(pd.concat(extrapolations, ignore_index=True), sm.output.extrapolation)
