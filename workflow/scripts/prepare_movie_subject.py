"""Snakemake adapter: one subject's parcel responses, paired with the clips lag TRs earlier."""

from encscale.data.movies import prepare_movie_subject
from encscale.jobs import log_to_file
from encscale.provenance import job_provenance

sm = snakemake  # noqa: F821
log_to_file(sm.log[0])
prepare_movie_subject(
    list(sm.input.fmri),
    sm.input.stimuli,
    sm.output[0],
    subject=sm.wildcards.subject,
    test_movies=sm.params.test_movies,
    lag=sm.params.lag,
    provenance=job_provenance(sm),
)
