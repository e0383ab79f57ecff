"""Snakemake adapter: a GPT-2 run's hidden states per TR clip."""

import torch

from encscale.jobs import log_to_file
from encscale.provenance import job_provenance
from encscale.video.features import extract_gpt_features

sm = snakemake  # noqa: F821
log_to_file(sm.log[0])
torch.set_num_threads(sm.threads)
extract_gpt_features(
    sm.input.stimuli,
    sm.input.model,
    sm.output[0],
    name=sm.wildcards.model,
    **sm.params.settings,
    provenance=job_provenance(sm),
)
