"""The movie study's stimuli and response files, in the image branch's contract.

``stimuli.h5`` (movies): one row per TR clip (:func:`encscale.video.clips.tr_clip_table`) of every
movie the encoding uses: ``movie`` (n,) str, ``tr`` (n,) int64, ``start_s`` and ``end_s``
(n,) float64, and ``codes`` (n × t × h × w) int16, the clip's VQ-VAE codes; attributes
``tr``, ``fps``, ``frames``, ``size``, ``n_codes``.

``responses/<subject>.h5``: per split (``train``: runs of the training movies, ``test``: the
held-out movies) ``responses`` (n × parcels) float32, each run z-scored per parcel,
``stimulus`` (n,) int64 row of stimuli.h5, ``run`` (n,) str (the fMRI dataset key) and
``tr`` (n,) int64; ``noise_ceiling`` (parcels,) NaN (no repeated test runs); attributes
``subject``, ``lag`` and ``test_movies``.

Alignment: fMRI sample t of a run is paired with the clip ending where TR t − ``lag`` ends,
i.e. the stimulus row of (movie, t − lag); samples without such a clip (t < lag, or a run
longer than its movie) are left out.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from encscale.data import cneuromod
from encscale.io import create_h5, open_h5, read_dataset

log = logging.getLogger(__name__)
PathLike = str | os.PathLike


def write_movie_stimuli(
    out_path: PathLike,
    table: pd.DataFrame,
    codes: np.ndarray,
    attrs: Mapping[str, Any],
    provenance: Mapping[str, Any] | None = None,
) -> None:
    """Write stimuli.h5 from the TR clip table and its codes (layout in the module docstring)."""
    if len(codes) != len(table):
        raise ValueError(f"{len(codes)} clips' codes for a table of {len(table)} TR clips")
    with create_h5(out_path, provenance) as h5:
        h5["movie"] = table["movie"].to_numpy(dtype="S")
        h5["tr"] = table["tr"].to_numpy(dtype=np.int64)
        h5["start_s"] = table["start_s"].to_numpy(dtype=np.float64)
        h5["end_s"] = table["end_s"].to_numpy(dtype=np.float64)
        h5["codes"] = codes.astype(np.int16)
        h5.attrs.update(attrs)


def read_tr_table(stimuli_path: PathLike) -> pd.DataFrame:
    """The (movie, tr) of every row of a movie stimuli.h5."""
    with open_h5(stimuli_path, "stimuli") as h5:
        movie = read_dataset(h5, "movie", ndim=1).astype(str)
        tr = read_dataset(h5, "tr", ndim=1)
    return pd.DataFrame({"movie": movie, "tr": tr})


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
    with create_h5(out_path, provenance) as h5:
        for name, part in split.items():
            h5[f"{name}/responses"] = np.concatenate(part["responses"])
            h5[f"{name}/stimulus"] = np.concatenate(part["stimulus"])
            h5[f"{name}/run"] = np.concatenate(part["run"]).astype("S")
            h5[f"{name}/tr"] = np.concatenate(part["tr"])
            log.info("%s %s: %d samples", subject, name, len(h5[f"{name}/stimulus"]))
        h5["noise_ceiling"] = np.full(n_parcels, np.nan, dtype=np.float32)
        h5.attrs.update(subject=subject, lag=lag, test_movies=list(test_movies))
