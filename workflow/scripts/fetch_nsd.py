"""Snakemake adapter: one object of NSD's bucket into nsd.root, verified."""

from encscale.jobs import job_context

sm = snakemake  # noqa: F821
with job_context(sm):
    from encscale.data.s3 import S3Source, fetch_object

    fetch_object(
        S3Source.from_config(sm.params.source),
        sm.wildcards.key,
        sm.output[0],
        sha256=sm.params.sha256,
    )
