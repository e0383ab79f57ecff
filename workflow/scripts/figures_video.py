"""Snakemake adapter: the video study's figures from the runs table and the encoding scores."""

import pandas as pd

from encscale.figures import video as vf
from encscale.jobs import log_to_file
from encscale.scaling.analysis import read_scores

sm = snakemake  # noqa: F821
log_to_file(sm.log[0])
out, base = sm.output, sm.params.base
runs = pd.read_csv(sm.input.runs, sep="\t")
scores = read_scores(sm.input.scores)
scores = scores[(scores["atlas"] == "all") & (scores["roi"] == "all")]
table = vf.architecture_table(
    runs, scores.rename(columns={"model": "run"})[["subject", "run", "r"]]
)
vf.plot_architecture(table, base, out.architecture, out.architecture_svg)
vf.plot_data_size(table, base, out.data_size, out.data_size_svg)
vf.plot_precision(runs, base, out.precision, out.precision_svg)
vf.plot_compute_frontier(table, out.compute_frontier, out.compute_frontier_svg)
