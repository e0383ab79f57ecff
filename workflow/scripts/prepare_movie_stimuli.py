"""Snakemake adapter: every TR clip of the encoding's movies and its codes."""

from encscale.jobs import job_context

sm = snakemake  # noqa: F821
with job_context(sm, torch_threads=sm.threads) as provenance:
    from encscale.video.stimuli import prepare_movie_stimuli

    prepare_movie_stimuli(
        sm.params.movies,
        sm.input.tokenizer,
        sm.output[0],
        clip=sm.params.clip,
        batch_size=sm.params.batch_size,
        device=sm.params.device,
        provenance=provenance,
    )
