"""Snakemake adapter: every fit of one subject × model, from shared kernels."""

from encscale.jobs import job_context

sm = snakemake  # noqa: F821
with job_context(sm, torch_threads=sm.threads) as provenance:
    from encscale.encoding.subject import fit_subject_model_from_config

    features = sm.input.get("features")
    if features is None:  # features.store none: the job runs the model itself
        from encscale.vision.live import model_maps_from_config

        features = model_maps_from_config(sm.input.stimuli, sm.params.model_maps)
    fit_subject_model_from_config(
        sm.input.responses,
        features,
        list(sm.output),
        settings=sm.params.settings,
        declared_mb=sm.resources.mem_mb,
        layers=sm.params.get("layers"),  # a fixed feature set's layer
        predict_sizes=sm.params.get("predict_sizes"),  # encoding.predictions
        provenance=provenance,
    )
