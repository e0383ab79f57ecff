"""Snakemake adapter: stimuli.h5 from the images the study's subjects saw."""

from encscale.data import nsd
from encscale.data.prepare import prepare_stimuli
from encscale.data.s3 import S3Source, open_remote
from encscale.jobs import log_to_file
from encscale.provenance import job_provenance

sm = snakemake  # noqa: F821
log_to_file(sm.log[0])
root = nsd.root_of_expdesign(sm.input.design)
provenance = job_provenance(sm)
if sm.params.remote is None:
    prepare_stimuli(root, sm.params.subjects, sm.output[0], provenance=provenance)
else:  # only the rows of imgBrick the subjects saw cross the network
    with open_remote(S3Source.from_config(sm.params.remote), sm.params.key) as remote:
        prepare_stimuli(
            root, sm.params.subjects, sm.output[0], source=remote, provenance=provenance
        )
