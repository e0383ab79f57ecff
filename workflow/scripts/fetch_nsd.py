"""Snakemake adapter: one object of NSD's bucket into nsd.root, verified."""

from encscale.data.s3 import S3Source, fetch_object
from encscale.jobs import log_to_file

sm = snakemake  # noqa: F821
log_to_file(sm.log[0])
fetch_object(
    S3Source.from_config(sm.params.source), sm.wildcards.key, sm.output[0], sha256=sm.params.sha256
)
