"""Snakemake adapter: one GPT-2 training run (resumed from its checkpoint if one is left)."""

import torch

from encscale.gpt_runs import train_run
from encscale.logs import log_to_file

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
