"""Snakemake adapter: ROI scores of one fit."""

from encscale.jobs import job_context

sm = snakemake  # noqa: F821
with job_context(sm):
    from encscale.encoding.scores import score_fit
    from encscale.io import write_tsv

    scores = score_fit(sm.input.fit, sm.input.responses, sm.params.min_noise_ceiling)
    write_tsv(scores, sm.output[0])
