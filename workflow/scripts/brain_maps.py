"""Snakemake adapter: a subject's maps of voxel accuracy and data-scaling slope."""

from encscale.jobs import job_context

sm = snakemake  # noqa: F821
with job_context(sm):
    from encscale.scaling.brainmaps import write_brain_maps

    write_brain_maps(
        list(sm.input.accuracy),
        list(sm.input.slope),
        sm.params.sizes,
        sm.input.responses,
        sm.output.accuracy,
        sm.output.slope,
        fsaverage_masks=sm.input.get("fsaverage_masks"),  # surfaces only
    )
