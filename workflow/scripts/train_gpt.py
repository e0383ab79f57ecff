"""Snakemake adapter: one GPT-2 training run (resumed from its checkpoint if one is left)."""

from encscale.jobs import job_context

sm = snakemake  # noqa: F821
with job_context(sm, torch_threads=sm.threads):
    from encscale.video.runs import train_run

    train_run(
        sm.input.tokens,
        sm.input.heldout,
        sm.output.model,
        sm.output.log,
        point=sm.params.point,
        training=sm.params.training,
        checkpoint=sm.params.checkpoint,
        device=sm.params.device,
    )
