"""Snakemake adapter: a model's pretrained weights, verified, into resources/weights/."""

from encscale.jobs import log_to_file
from encscale.vision.weights import fetch_weights

sm = snakemake  # noqa: F821
log_to_file(sm.log[0])
fetch_weights(sm.params.spec, sm.output.weights)
