"""Snakemake adapter: the figure of one brain map (volume slices, or fsaverage surfaces)."""

from encscale.jobs import log_to_file
from encscale.scaling import brainmaps

sm = snakemake  # noqa: F821
log_to_file(sm.log[0])
out = (sm.output.png, sm.output.svg)
if sm.params.volume:
    brainmaps.plot_volume_map(sm.input[0], out, sm.params.title)
else:
    brainmaps.plot_surface_maps(list(sm.input), sm.params.fsaverage_dir, out, sm.params.title)
