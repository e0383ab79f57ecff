"""Snakemake adapter: every fit's ROI scores in one tidy table."""

from encscale.jobs import job_context

sm = snakemake  # noqa: F821
with job_context(sm):
    from encscale.encoding.scores import collect_scores, edge_fits
    from encscale.io import write_tsv

    scores = collect_scores(list(sm.input))
    write_tsv(scores, sm.output[0])
    if sm.output.get("edges"):  # the study's scores: the fits at the grid's edge too
        write_tsv(edge_fits(scores), sm.output.edges)
