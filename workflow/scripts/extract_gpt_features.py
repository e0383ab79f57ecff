"""Snakemake adapter: a GPT-2 run's hidden states per TR clip."""

from encscale.jobs import job_context

sm = snakemake  # noqa: F821
with job_context(sm, torch_threads=sm.threads) as provenance:
    from encscale.video.features import extract_gpt_features

    extract_gpt_features(
        sm.input.stimuli,
        sm.input.model,
        sm.output[0],
        name=sm.wildcards.model,
        **sm.params.settings,
        provenance=provenance,
    )
