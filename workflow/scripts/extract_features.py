"""Snakemake adapter: pooled block features of one model."""

import torch

from encscale.jobs import log_to_file
from encscale.provenance import job_provenance
from encscale.vision.features import extract_features

sm = snakemake  # noqa: F821
log_to_file(sm.log[0])
torch.set_num_threads(max(1, sm.threads - sm.params.num_workers))
extract_features(
    sm.input.stimuli,
    sm.output[0],
    sm.wildcards.model,
    sm.params.spec,
    sm.params.pool_sizes,
    batch_size=sm.params.batch_size,
    device=sm.params.device,
    precision=sm.params.precision,
    storage=sm.params.storage,
    compression=sm.params.compression,
    prefix_tokens=sm.params.prefix_tokens,
    num_workers=sm.params.num_workers,
    offline=sm.params.offline,
    provenance=job_provenance(sm),
)
