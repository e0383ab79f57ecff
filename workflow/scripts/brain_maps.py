"""Snakemake adapter: a subject's maps of voxel accuracy and data-scaling slope."""

from encscale.jobs import log_to_file
from encscale.scaling import brainmaps

sm = snakemake  # noqa: F821
log_to_file(sm.log[0])
slope_fits = list(sm.input.slope)
per_size = len(slope_fits) // len(sm.params.sizes)  # the draws, in the order of the sizes
values = {
    "accuracy": brainmaps.voxel_accuracy(list(sm.input.accuracy)),
    "slope": brainmaps.voxel_slopes(
        {
            size: slope_fits[i * per_size : (i + 1) * per_size]
            for i, size in enumerate(sm.params.sizes)
        }
    ),
}
for name, v in values.items():
    if sm.params.volume:
        brainmaps.write_volume_map(v, sm.input.responses, sm.output[name])
    else:
        brainmaps.write_surface_maps(
            v, sm.input.responses, list(sm.input.fsaverage_masks), list(sm.output[name])
        )
