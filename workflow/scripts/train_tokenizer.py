"""Snakemake adapter: train the VQ-VAE tokenizer on clips of the pre-training movies."""

import torch

from encscale.jobs import log_to_file
from encscale.video.tokenizer import fit_tokenizer

sm = snakemake  # noqa: F821
log_to_file(sm.log[0])
torch.set_num_threads(sm.threads)
fit_tokenizer(
    sm.params.movies,
    sm.output.model,
    sm.output.log,
    clip=sm.params.clip,
    settings=sm.params.settings,
    device=sm.params.device,
)
