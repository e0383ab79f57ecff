"""Snakemake adapter: stimuli.h5 from the images the study's subjects saw."""

from encscale.logs import log_to_file
from encscale.prepare import prepare_stimuli

log_to_file(snakemake.log[0])  # noqa: F821
prepare_stimuli(snakemake.params.root, snakemake.params.subjects, snakemake.output[0])  # noqa: F821
