"""The movie study's responses files, in the image study's layout (:mod:`encscale.contracts`):
per split (``train``: runs of the training movies, ``test``: the held-out movies) each run
z-scored per parcel, with its ``run`` and ``tr``; ``noise_ceiling`` NaN (no repeated test
runs). Its stimuli file: :func:`encscale.contracts.write_movie_stimuli`.

Alignment: fMRI sample t of a run is paired with the clip ending where TR t − ``lag`` ends,
i.e. the stimulus row of (movie, t − lag); samples without such a clip (t < lag, or a run
longer than its movie) are left out.

Several lags, and a window (encscale's options, ``clips.lags`` and ``clips.window_trs``; the
study paired each TR with one clip at one lag): sample t is paired, for each lag, with the
``window_trs`` TR clips ending at TR t − lag, (movie, t − lag − window_trs + 1) … (movie,
t − lag), their rows in ``<split>/lagged`` (n × lags × window); a sample is kept only when
every one of those clips exists. The features file keeps one row per TR clip; the fit looks
the lagged rows up (:func:`encscale.encoding.fit.fit_encoding`).
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


def lagged_rows(
    stimulus_index: Mapping[tuple[str, int], int],
    movie: str,
    n_samples: int,
    lags: Sequence[int],
    window_trs: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """fMRI samples t of one run whose lagged clips all exist, and their stimulus rows
    (n × len(lags) × window_trs): for lag i, the rows of (movie, t − lags[i] − window_trs +
    1 + w), w = 0 … window_trs − 1 (oldest first)."""
    lags = check_lags(lags, window_trs)
    back = np.arange(window_trs - 1, -1, -1)  # TRs before t − lag, oldest first
    ts, rows = [], []
    for t in range(n_samples):
        found = [[stimulus_index.get((movie, t - lag - b)) for b in back] for lag in lags]
        if all(row is not None for per_lag in found for row in per_lag):
            ts.append(t)
            rows.append(found)
    shape = (len(ts), len(lags), window_trs)
    return np.asarray(ts, dtype=np.int64), np.asarray(rows, dtype=np.int64).reshape(shape)


def check_lags(lags: int | Sequence[int], window_trs: int = 1) -> list[int]:
    """``lags`` (one lag or a list) as a list of distinct integers ≥ 0, with ``window_trs``
    ≥ 1; else a ValueError naming the bad value."""
    lags = [lags] if isinstance(lags, int | np.integer) else list(lags)
    bad = [x for x in lags if isinstance(x, bool) or not isinstance(x, int | np.integer) or x < 0]
    if not lags or bad or len(set(lags)) < len(lags):
        raise ValueError(f"lags must be distinct integers >= 0 TRs, got {lags!r}")
    if isinstance(window_trs, bool) or not isinstance(window_trs, int) or window_trs < 1:
        raise ValueError(f"window_trs must be an integer >= 1, got {window_trs!r}")
    return [int(x) for x in lags]


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
    lag: int | Sequence[int],
    window_trs: int = 1,
    provenance: Mapping[str, Any] | None = None,
) -> None:
    """One subject's responses file from its fMRI files: the runs of the movies in
    stimuli.h5, z-scored, paired with their clips ``lag`` TRs earlier, split by movie.

    ``lag``: one lag, or a list of them; several (or ``window_trs`` > 1) also write each
    sample's lagged clips' rows (``<split>/lagged``, module docstring)."""
    lags = check_lags(lag, window_trs)
    several = len(lags) > 1 or window_trs > 1
    table = read_tr_table(stimuli_path)
    index = {
        (m, int(t)): i for i, (m, t) in enumerate(zip(table["movie"], table["tr"], strict=True))
    }
    movies = set(table["movie"])
    split: dict[str, dict[str, list]] = {
        name: {"responses": [], "stimulus": [], "run": [], "tr": [], "lagged": []}
        for name in ("train", "test")
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
            part = split["test" if run.movie in test_movies else "train"]
            if several:
                ts, lagged = lagged_rows(index, run.movie, len(data), lags, window_trs)
                rows = lagged[:, 0, -1]
                part["lagged"].append(lagged)
            else:
                ts, rows = aligned_rows(index, run.movie, len(data), lags[0])
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
        name: Split(**{k: np.concatenate(v) for k, v in part.items() if v})
        for name, part in split.items()
    }
    for name, part in splits.items():
        log.info("%s %s: %d samples", subject, name, len(part.stimulus))
    responses = Responses(
        **splits,
        noise_ceiling=np.full(n_parcels, np.nan),
        attrs=dict(
            subject=subject,
            **({} if several else {"lag": lags[0]}),
            lags=lags,
            window_trs=window_trs,
            test_movies=list(test_movies),
        ),
    )
    write_responses(out_path, responses, provenance)
