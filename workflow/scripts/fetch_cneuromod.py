"""Snakemake adapter: the CNeuroMod (Algonauts 2025) files into cneuromod.root, via DataLad."""

from encscale.data.datalad_fetch import fetch_dataset
from encscale.jobs import log_to_file

sm = snakemake  # noqa: F821
log_to_file(sm.log[0])
fetch_dataset(sm.params.source, sm.params.root, list(sm.params.paths), jobs=sm.params.jobs)
