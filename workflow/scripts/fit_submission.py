"""Snakemake adapter: a submission's refit of one subject × model on every training image."""

from encscale.jobs import job_context

sm = snakemake  # noqa: F821
with job_context(sm, torch_threads=sm.threads) as provenance:
    from encscale.encoding.subject import fit_submission_from_config

    features = sm.input.get("features")
    if features is None:  # features.store none: the job runs the model itself
        from encscale.vision.live import model_maps_from_config

        features = model_maps_from_config(sm.input.stimuli, sm.params.model_maps)
    fit_submission_from_config(
        sm.input.responses,
        features,
        sm.output[0],
        settings=sm.params.settings,
        declared_mb=sm.resources.mem_mb,
        provenance=provenance,
    )
