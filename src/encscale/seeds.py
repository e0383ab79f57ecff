"""Named random streams: independent, reproducible draws derived from a config's one seed."""

from __future__ import annotations

import hashlib


def named_seed(seed: int, *names: str) -> list[int]:
    """Entropy of the random stream ``names`` under ``seed``, for ``np.random.default_rng``.

    ``[seed, h]`` with ``h`` the first 8 bytes of SHA-256 of the names joined by "/", read
    as a little-endian integer: a stream (e.g. ``"movie", run``) depends on its names and
    the seed only, not on which other streams were drawn before it.
    """
    digest = hashlib.sha256("/".join(names).encode()).digest()
    return [seed, int.from_bytes(digest[:8], "little")]
