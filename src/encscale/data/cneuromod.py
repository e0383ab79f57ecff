"""The CNeuroMod movie data as released for the Algonauts 2025 challenge (a DataLad dataset).

Layout under the dataset's root:

- ``stimuli/movies/friends/s<season>/friends_s<SS>e<EE><split>.mkv`` (split a, b, …; a
  Friends episode is cut into ~12 min runs) and
  ``stimuli/movies/movie10/<movie>/<movie><NN>.mkv``;
- ``fmri/sub-<NN>/func/sub-<NN>_task-friends_space-MNI152NLin2009cAsym_atlas-Schaefer18_``
  ``parcel-1000Par7Net_desc-s123456_bold.h5`` (seasons 1–6) and
  ``…_task-movie10_…_bold.h5`` (no ``desc``): one dataset per run, (TRs × 1000 parcels)
  float32, named ``ses-<NNN>_task-s<SS>e<EE><split>`` (Friends) or
  ``ses-<NNN>_task-<movie><NN>[_run-<n>]`` (Movie10; run 1 or 2 for the films shown twice);
- subjects 01, 02, 03 and 05; one fMRI sample every TR = 1.49 s from the run's start.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from encscale.io import PathLike, open_h5

TR = 1.49  # seconds
SUBJECTS = ("sub-01", "sub-02", "sub-03", "sub-05")
SPACE = "space-MNI152NLin2009cAsym_atlas-Schaefer18_parcel-1000Par7Net"
FRIENDS_RUN = re.compile(r"s\d{2}e\d{2}[a-z]")  # a Friends run: season, episode, split
FRIENDS_KEY = re.compile(
    r"ses-(?P<session>\d{3})_task-s(?P<season>\d{2})e(?P<episode>\d{2})(?P<split>[a-z])"
)
MOVIE10_KEY = re.compile(
    r"ses-(?P<session>\d{3})_task-(?P<movie>[a-z]+)(?P<part>\d{2})(_run-(?P<run>\d))?"
)


@dataclass(frozen=True)
class Run:
    """One fMRI run: its dataset key in the subject's file and the movie file it shows."""

    key: str
    session: int
    movie: str  # the stimulus name: "friends_s01e02a" or "bourne01"
    repeat: int  # 1, or 2 for a second showing


def fmri_path(root: PathLike, subject: str, task: str) -> str:
    """The subject's fMRI file of ``task`` (``friends`` or ``movie10``)."""
    _check_subject(subject)
    if task not in ("friends", "movie10"):
        raise ValueError(f"unknown task '{task}' (expected friends or movie10)")
    desc = "_desc-s123456" if task == "friends" else ""
    return str(
        Path(root) / "fmri" / subject / "func" / f"{subject}_task-{task}_{SPACE}{desc}_bold.h5"
    )


def movie_path(root: PathLike, movie: str) -> str:
    """The ``.mkv`` of a stimulus name (``friends_s01e02a``, ``bourne01``)."""
    friends = re.fullmatch(r"friends_s(\d{2})e\d{2}[a-z]", movie)
    if friends:
        return str(
            Path(root) / "stimuli" / "movies" / "friends" / f"s{int(friends[1])}" / f"{movie}.mkv"
        )
    film = re.fullmatch(r"([a-z]+)\d{2}", movie)
    if film:
        return str(Path(root) / "stimuli" / "movies" / "movie10" / film[1] / f"{movie}.mkv")
    raise ValueError(f"'{movie}' is not a Friends run (friends_sSSeEEx) or a Movie10 part")


def parse_run(key: str) -> Run:
    """The run of an fMRI dataset key; a ValueError names a key of neither form."""
    m = FRIENDS_KEY.fullmatch(key)
    if m:
        movie = f"friends_s{m['season']}e{m['episode']}{m['split']}"
        return Run(key, int(m["session"]), movie, 1)
    m = MOVIE10_KEY.fullmatch(key)
    if m:
        return Run(key, int(m["session"]), f"{m['movie']}{m['part']}", int(m["run"] or 1))
    raise ValueError(f"fMRI dataset key '{key}' is neither ses-NNN_task-sSSeEEx nor a Movie10 run")


def list_runs(path: PathLike) -> list[Run]:
    """The runs of a subject's fMRI file, in key order."""
    with open_h5(path, "fMRI") as h5:
        keys = sorted(h5)
    try:
        return [parse_run(k) for k in keys]
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err


def read_run(path: PathLike, key: str) -> np.ndarray:
    """One run's (TRs × parcels) float32 time series; errors name the file and the key."""
    with open_h5(path, "fMRI") as h5:
        if key not in h5:
            raise KeyError(f"{path}: no run '{key}'")
        data = h5[key][()]
    if data.ndim != 2 or data.shape[0] == 0:
        raise ValueError(f"{path}: run '{key}' has shape {data.shape}, expected TRs × parcels")
    if not np.isfinite(data).all():
        raise ValueError(f"{path}: run '{key}' holds non-finite values")
    return data.astype(np.float32, copy=False)


def _check_subject(subject: str) -> None:
    if not re.fullmatch(r"sub-\d{2}", subject):
        raise ValueError(f"'{subject}' is not a subject name of the form sub-NN")
