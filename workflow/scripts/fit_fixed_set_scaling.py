"""Snakemake adapter: the fixed feature set's data-scaling laws per ROI, and extrapolations."""

from encscale.jobs import job_context

sm = snakemake  # noqa: F821
with job_context(sm):
    from encscale.scaling.analysis import write_data_scaling_table

    write_data_scaling_table(
        list(sm.input.fits),
        sm.params.subjects,
        list(sm.input.responses),
        sm.params.scaling,
        "data_fixed",
        sm.output.table,
        sm.output.extrapolation,
    )
