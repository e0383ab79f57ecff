"""Snakemake adapter: the figure of one brain map (volume slices, or fsaverage surfaces)."""

from encscale.jobs import job_context

sm = snakemake  # noqa: F821
with job_context(sm):
    from encscale.figures.brainmaps import plot_brain_map

    plot_brain_map(
        list(sm.input),
        (sm.output.png, sm.output.svg),
        sm.params.title,
        volume=sm.params.volume,
        fsaverage_dir=sm.params.fsaverage_dir,
    )
