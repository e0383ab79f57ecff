"""The study's stimuli file from an NSD copy: its local stimuli file, or the bucket's, of which
only the images the subjects saw are read (ranged reads: :func:`encscale.data.s3.open_remote`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from encscale.data import nsd
from encscale.data.prepare import prepare_stimuli
from encscale.data.s3 import S3Source, open_remote
from encscale.io import PathLike


def prepare_study_stimuli(
    design_path: PathLike,
    subjects: Sequence[str],
    out_path: PathLike,
    *,
    remote: Mapping[str, Any] | None = None,
    key: str | None = None,
    provenance: Mapping[str, Any] | None = None,
    view: bool = False,
) -> None:
    """:func:`prepare_stimuli` of the NSD copy whose design file is ``design_path``: from its
    stimuli file, or with ``remote`` (an :class:`~encscale.data.s3.S3Source` config) from the
    bucket's object ``key``, of which only the images the subjects saw are read; ``view``: a
    view of the local stimuli file's rows instead of a copy."""
    root = nsd.root_of_expdesign(design_path)
    if remote is None:
        prepare_stimuli(root, subjects, out_path, provenance=provenance, view=view)
        return
    with open_remote(S3Source.from_config(remote), key) as source:
        prepare_stimuli(root, subjects, out_path, source=source, provenance=provenance)
