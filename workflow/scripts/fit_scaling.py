"""Snakemake adapter: data- and parameter-scaling laws per ROI, and extrapolations."""

from encscale.jobs import job_context

sm = snakemake  # noqa: F821
with job_context(sm):
    from encscale.scaling.analysis import write_scaling_tables

    write_scaling_tables(
        list(sm.input.data),
        list(sm.input.param),
        sm.params.subjects,
        list(sm.input.responses),
        sm.params.scaling,
        sm.output.data,
        sm.output.param,
        sm.output.extrapolation,
        families=sm.params.families,
    )
