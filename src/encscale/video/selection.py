"""Which movies a study uses: shell patterns over stimulus names (``friends_s01e02a``).

Light on purpose (standard library only): the workflow selects the movies when it plans a
study.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence


def select_movies(
    available: Iterable[str], patterns: Sequence[str], exclude: Sequence[str] = ()
) -> list[str]:
    """The sorted names in ``available`` matching any of ``patterns`` (shell globs) and none of
    ``exclude``; a pattern that matches nothing is an error (a typo would silently shrink the
    study)."""
    available = sorted(set(available))
    for pattern in patterns:
        if not fnmatch.filter(available, pattern):
            raise ValueError(f"movie pattern '{pattern}' matches none of {available}")
    chosen = [m for m in available if any(fnmatch.fnmatch(m, p) for p in patterns)]
    return [m for m in chosen if not any(fnmatch.fnmatch(m, p) for p in exclude)]
