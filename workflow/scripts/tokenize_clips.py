"""Snakemake adapter: codes of random clips of movies: the GPT-2's pre-training clips, or its
held-out validation clips (rule tokenize_validation_clips)."""

from encscale.jobs import job_context

sm = snakemake  # noqa: F821
with job_context(sm, torch_threads=sm.threads) as provenance:
    from encscale.video.tokenizer import tokenize_pretraining_clips

    tokenize_pretraining_clips(
        sm.params.movies,
        sm.input.tokenizer,
        sm.output[0],
        n=sm.params.n,
        clip=sm.params.clip,
        seed=sm.params.seed,
        batch_size=sm.params.batch_size,
        device=sm.params.device,
        provenance=provenance,
    )
