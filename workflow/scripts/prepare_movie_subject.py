"""Snakemake adapter: one subject's parcel responses, paired with the clips lag TRs earlier
(each lag of clips.lags)."""

from encscale.jobs import job_context

sm = snakemake  # noqa: F821
with job_context(sm) as provenance:
    from encscale.data.movies import prepare_movie_subject

    prepare_movie_subject(
        list(sm.input.fmri),
        sm.input.stimuli,
        sm.output[0],
        subject=sm.wildcards.subject,
        test_movies=sm.params.test_movies,
        lag=sm.params.lags,
        window_trs=sm.params.window_trs,
        provenance=provenance,
    )
