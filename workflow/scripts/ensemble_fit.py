"""Snakemake adapter: the ensemble of several models' fits of one subject, size and draw."""

from encscale.encoding.ensemble import ensemble_fit
from encscale.jobs import log_to_file
from encscale.provenance import job_provenance

sm = snakemake  # noqa: F821
log_to_file(sm.log[0])
ensemble_fit(
    list(sm.input.members), sm.input.responses, sm.output[0], provenance=job_provenance(sm)
)
