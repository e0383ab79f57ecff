"""Snakemake adapter: one GPT-2 training run (resumed from its checkpoint if one is left)."""

import torch

from encscale.jobs import log_to_file
from encscale.video.runs import train_run

sm = snakemake  # noqa: F821
log_to_file(sm.log[0])
torch.set_num_threads(sm.threads)
train_run(
    sm.input[0],
    sm.output.model,
    sm.output.log,
    point=sm.params.point,
    training=sm.params.training,
    checkpoint=sm.params.checkpoint,
    device=sm.params.device,
)
