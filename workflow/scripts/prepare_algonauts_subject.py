"""Snakemake adapter: one subject's responses file from an Algonauts 2023 download."""

from encscale.data import algonauts
from encscale.jobs import log_to_file
from encscale.provenance import job_provenance

sm = snakemake  # noqa: F821
log_to_file(sm.log[0])
cfg = sm.params.settings
algonauts.prepare_subject(
    cfg["root"],
    sm.wildcards.subject,
    sm.input.stimuli,
    sm.output[0],
    rois=cfg["rois"],
    holdout=cfg["holdout"],
    seed=cfg["seed"],
    ncsnr=tuple(sm.input.ncsnr) if "ncsnr" in sm.input.keys() else None,
    n_repeats=cfg["n_repeats"],
    provenance=job_provenance(sm),
)
