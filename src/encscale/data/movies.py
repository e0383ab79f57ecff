"""The movie study's responses files, in the image study's layout (:mod:`encscale.contracts`):
per split (``train``: runs of the training movies, ``test``: the held-out movies) each run
z-scored per parcel, with its ``run`` and ``tr``; ``noise_ceiling`` NaN (no repeated test
runs). Its stimuli file: :func:`encscale.contracts.write_movie_stimuli`.

Alignment: fMRI sample t of a run is paired with the clip ending where TR t − ``lag`` ends,
i.e. the stimulus row of (movie, t − lag); samples without such a clip (t < lag, or a run
longer than its movie) are left out.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from encscale.contracts import Responses, Split, read_tr_table, write_responses
from encscale.data import cneuromod
from encscale.io import PathLike

log = logging.getLogger(__name__)


def aligned_rows(
    stimulus_index: Mapping[tuple[str, int], int], movie: str, n_samples: int, lag: int
) -> tuple[np.ndarray, np.ndarray]:
    """fMRI samples t of one run and their stimulus rows (movie, t − lag), where one exists."""
    ts, rows = [], []
    for t in range(lag, n_samples):
        row = stimulus_index.get((movie, t - lag))
        if row is not None:
            ts.append(t)
            rows.append(row)
    return np.asarray(ts, dtype=np.int64), np.asarray(rows, dtype=np.int64)


def zscore(x: np.ndarray) -> np.ndarray:
    """Columns of ``x`` (time × parcels) to mean 0 and unit variance (a constant column → 0)."""
    sd = x.std(axis=0)
    return ((x - x.mean(axis=0)) / np.where(sd > 0, sd, 1.0)).astype(np.float32)


def prepare_movie_subject(
    fmri_paths: Sequence[PathLike],
    stimuli_path: PathLike,
    out_path: PathLike,
    *,
    subject: str,
    test_movies: Sequence[str],
    lag: int,
    provenance: Mapping[str, Any] | None = None,
) -> None:
    """One subject's responses file from its fMRI files: the runs of the movies in
    stimuli.h5, z-scored, paired with their clips ``lag`` TRs earlier, split by movie."""
    table = read_tr_table(stimuli_path)
    index = {
        (m, int(t)): i for i, (m, t) in enumerate(zip(table["movie"], table["tr"], strict=True))
    }
    movies = set(table["movie"])
    split: dict[str, dict[str, list]] = {
        name: {"responses": [], "stimulus": [], "run": [], "tr": []} for name in ("train", "test")
    }
    n_parcels = None
    for path in fmri_paths:
        for run in cneuromod.list_runs(path):
            if run.movie not in movies:
                continue
            data = cneuromod.read_run(path, run.key)
            if n_parcels is None:
                n_parcels = data.shape[1]
            elif data.shape[1] != n_parcels:
                raise ValueError(
                    f"{path}: run '{run.key}' has {data.shape[1]} parcels, earlier runs {n_parcels}"
                )
            ts, rows = aligned_rows(index, run.movie, len(data), lag)
            part = split["test" if run.movie in test_movies else "train"]
            part["responses"].append(zscore(data)[ts])
            part["stimulus"].append(rows)
            part["run"].append(np.full(len(ts), run.key))
            part["tr"].append(ts)
    for name, part in split.items():
        if not part["responses"]:
            raise ValueError(
                f"{subject}: no {name} runs in {', '.join(map(str, fmri_paths))} for the movies "
                f"of {stimuli_path}"
            )
    splits = {
        name: Split(**{k: np.concatenate(v) for k, v in part.items()})
        for name, part in split.items()
    }
    for name, part in splits.items():
        log.info("%s %s: %d samples", subject, name, len(part.stimulus))
    responses = Responses(
        **splits,
        noise_ceiling=np.full(n_parcels, np.nan),
        attrs=dict(subject=subject, lag=lag, test_movies=list(test_movies)),
    )
    write_responses(out_path, responses, provenance)
