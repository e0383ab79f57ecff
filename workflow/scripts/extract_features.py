"""Snakemake adapter: the block maps of one model."""

from encscale.jobs import job_context

sm = snakemake  # noqa: F821
# the data loader's workers take their own threads
with job_context(sm, torch_threads=max(1, sm.threads - sm.params.num_workers)) as provenance:
    from encscale.vision.extract import extract_features

    extract_features(
        sm.input.stimuli,
        sm.output[0],
        sm.wildcards.model,
        sm.params.spec,
        batch_size=sm.params.batch_size,
        device=sm.params.device,
        precision=sm.params.precision,
        storage=sm.params.storage,
        compression=sm.params.compression,
        prefix_tokens=sm.params.prefix_tokens,
        pixel_norm=sm.params.pixel_norm,
        num_workers=sm.params.num_workers,
        offline=sm.params.offline,
        provenance=provenance,
    )
