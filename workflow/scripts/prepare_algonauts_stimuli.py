"""Snakemake adapter: stimuli.h5 from an Algonauts 2023 download's images."""

from encscale.data import algonauts
from encscale.jobs import log_to_file
from encscale.provenance import job_provenance

sm = snakemake  # noqa: F821
log_to_file(sm.log[0])
algonauts.prepare_stimuli(
    sm.params.root, sm.params.subjects, sm.output[0], provenance=job_provenance(sm)
)
