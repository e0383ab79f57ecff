"""Snakemake adapter: one subject's responses file from NSD betas."""

from encscale.data import nsd
from encscale.data.prepare import prepare_subject
from encscale.jobs import log_to_file
from encscale.provenance import job_provenance

sm = snakemake  # noqa: F821
log_to_file(sm.log[0])
prepare_subject(
    nsd.root_of_expdesign(sm.input.design),
    sm.wildcards.subject,
    sm.input.stimuli,
    sm.output[0],
    beta_version=sm.params.beta_version,
    atlases=sm.params.atlases,
    mask_roi=sm.params.mask_roi,
    n_sessions=sm.params.n_sessions,
    provenance=job_provenance(sm),
)
