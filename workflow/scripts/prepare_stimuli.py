"""Snakemake adapter: stimuli.h5 from the images the study's subjects saw."""

from encscale import nsd
from encscale.logs import log_to_file
from encscale.prepare import prepare_stimuli

sm = snakemake  # noqa: F821
log_to_file(sm.log[0])
prepare_stimuli(nsd.root_of_expdesign(sm.input.design), sm.params.subjects, sm.output[0])
