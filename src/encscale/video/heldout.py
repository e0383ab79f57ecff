"""Held-out validation episodes of the GPT-2 pre-training: which movies validate it, which
train it, and the check that the two share no episode.

The transformer's loss on clips of its own training movies says little: their windows
overlap the training windows. So whole *episodes* of the pre-training movies are held out:
their clips (``tokens/validation.h5``) give the held-out validation loss, and no tokenizer
or GPT-2 training clip is cut from them. They are never the encoding's test movies.

An episode is a Friends episode (``friends_s01e02a`` and ``friends_s01e02b`` are the two
runs of ``friends_s01e02``) or a Movie10 film (``bourne01``, ``bourne02``: ``bourne``);
any other name is its own episode.

Light on purpose (standard library only): the workflow splits the movies when it plans a
study.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

FRIENDS = re.compile(r"(friends_s\d{2}e\d{2})[a-z]?")
FILM = re.compile(r"([a-z]+)\d{2}")


def episode(movie: str) -> str:
    """The episode (or film) a stimulus name belongs to (module docstring)."""
    for pattern in (FRIENDS, FILM):
        match = pattern.fullmatch(movie)
        if match:
            return match[1]
    return movie


def episodes(movies: Iterable[str]) -> set[str]:
    """The episodes of ``movies``."""
    return {episode(m) for m in movies}


def last_episode(movies: Sequence[str]) -> list[str]:
    """The movies of the last episode of ``movies`` in name order (the default held-out
    validation episode)."""
    if not movies:
        raise ValueError("no pre-training movies to hold an episode out of")
    last = max(episodes(movies))
    return sorted(m for m in movies if episode(m) == last)


def split_validation(
    pretrain: Sequence[str], validation: Sequence[str] | None, test: Sequence[str]
) -> tuple[list[str], list[str]]:
    """(training movies, validation movies) of the pre-training.

    ``validation``: the held-out movies (None: :func:`last_episode` of ``pretrain``); every
    movie of ``pretrain`` from one of their episodes is held out with them, so the training
    movies share no episode with them. A validation movie of a ``test`` movie's episode, or
    no training movie left, is a ValueError.
    """
    validation = sorted(set(last_episode(pretrain) if validation is None else validation))
    if not validation:
        raise ValueError("no validation movies")
    shared = sorted(episodes(validation) & episodes(test))
    if shared:
        raise ValueError(
            f"validation episodes {shared} are the encoding's test episodes; hold out others"
        )
    held = episodes(validation)
    train = sorted(m for m in pretrain if episode(m) not in held)
    if not train:
        raise ValueError(
            f"holding out the episodes {sorted(held)} leaves no pre-training movie "
            f"(of {sorted(pretrain)})"
        )
    return train, validation


def check_disjoint(train: Iterable[str], validation: Iterable[str], what: str) -> None:
    """Raise ValueError (naming ``what``) if movies of ``train`` and ``validation`` share an
    episode."""
    shared = sorted(episodes(train) & episodes(validation))
    if shared:
        raise ValueError(
            f"{what}: the held-out validation clips share episodes {shared[:5]} with the "
            "training clips"
        )
