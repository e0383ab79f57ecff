"""Snakemake adapter: every fit's ROI scores in one tidy table."""

from encscale.jobs import job_context

sm = snakemake  # noqa: F821
with job_context(sm):
    from encscale.encoding.scores import collect_scores
    from encscale.io import write_tsv

    write_tsv(collect_scores(list(sm.input)), sm.output[0])
