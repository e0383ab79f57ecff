"""Snakemake adapter: a model's pretrained weights, verified, into resources/weights/."""

from encscale.jobs import job_context

sm = snakemake  # noqa: F821
with job_context(sm):
    from encscale.vision.weights import fetch_weights

    fetch_weights(sm.params.spec, sm.output.weights)
