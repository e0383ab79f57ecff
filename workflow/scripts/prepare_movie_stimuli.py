"""Snakemake adapter: every TR clip of the encoding's movies and its codes."""

import torch

from encscale.data import cneuromod
from encscale.data.movies import write_movie_stimuli
from encscale.jobs import log_to_file
from encscale.provenance import job_provenance
from encscale.video import clips
from encscale.video.vqvae import load_checkpoint

sm = snakemake  # noqa: F821
log_to_file(sm.log[0])
torch.set_num_threads(sm.threads)
clip = sm.params.clip
window = clips.clip_seconds(clip["frames"], clip["fps"])
table = clips.tr_clip_table(clips.movie_durations(sm.params.movies), cneuromod.TR, window)
tokenizer = load_checkpoint(sm.input.tokenizer)
codes = clips.encode_clips(
    tokenizer,
    sm.params.movies,
    table,
    **clip,
    batch_size=sm.params.batch_size,
    device=sm.params.device,
)
attrs = dict(tr=cneuromod.TR, n_codes=tokenizer.config.n_codes, **clip)
write_movie_stimuli(sm.output[0], table, codes, attrs, provenance=job_provenance(sm))
