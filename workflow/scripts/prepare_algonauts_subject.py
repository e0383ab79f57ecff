"""Snakemake adapter: one subject's responses file from an Algonauts 2023 download."""

from encscale.jobs import job_context

sm = snakemake  # noqa: F821
cfg = sm.params.settings
with job_context(sm) as provenance:
    from encscale.data import algonauts

    algonauts.prepare_subject(
        cfg["root"],
        sm.wildcards.subject,
        sm.input.stimuli,
        sm.output[0],
        rois=cfg["rois"],
        holdout=cfg["holdout"],
        seed=cfg["seed"],
        ncsnr=sm.input.get("ncsnr"),  # (lh, rh) where the study has NSD's ncsnr
        design=sm.input.get("design"),  # NSD's design file, for each image's trial count
        n_repeats=cfg["n_repeats"],
        provenance=provenance,
    )
