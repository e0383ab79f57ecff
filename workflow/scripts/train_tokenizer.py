"""Snakemake adapter: train the VQ-VAE tokenizer on clips of the pre-training movies (resumed
from its checkpoint if one is left)."""

from encscale.jobs import job_context

sm = snakemake  # noqa: F821
with job_context(sm, torch_threads=sm.threads):
    from encscale.video.tokenizer import fit_tokenizer

    fit_tokenizer(
        sm.params.movies,
        sm.output.model,
        sm.output.log,
        clip=sm.params.clip,
        settings=sm.params.settings,
        device=sm.params.device,
        checkpoint=sm.params.checkpoint,
    )
