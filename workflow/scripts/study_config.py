"""Snakemake adapter: the study's config, defaults filled in, as the report shows it."""

import yaml

from encscale.jobs import job_context

sm = snakemake  # noqa: F821
with job_context(sm):
    from encscale.io import atomic_path

    with atomic_path(sm.output[0]) as tmp:
        tmp.write_text(yaml.safe_dump(dict(sm.params.config), sort_keys=False))
