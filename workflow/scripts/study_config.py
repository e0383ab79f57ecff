"""Snakemake adapter: the study's config, defaults filled in, as the report shows it."""

import yaml

from encscale.io import atomic_path
from encscale.jobs import log_to_file

sm = snakemake  # noqa: F821
log_to_file(sm.log[0])
with atomic_path(sm.output[0]) as tmp:
    tmp.write_text(yaml.safe_dump(dict(sm.params.config), sort_keys=False))
