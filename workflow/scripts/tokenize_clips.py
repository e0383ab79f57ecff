"""Snakemake adapter: codes of the GPT-2's pre-training clips."""

import torch

from encscale.jobs import log_to_file
from encscale.provenance import job_provenance
from encscale.video.tokenizer import tokenize_pretraining_clips

sm = snakemake  # noqa: F821
log_to_file(sm.log[0])
torch.set_num_threads(sm.threads)
tokenize_pretraining_clips(
    sm.params.movies,
    sm.input.tokenizer,
    sm.output[0],
    n=sm.params.n,
    clip=sm.params.clip,
    seed=sm.params.seed,
    batch_size=sm.params.batch_size,
    device=sm.params.device,
    provenance=job_provenance(sm),
)
