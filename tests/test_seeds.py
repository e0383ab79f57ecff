"""Named random streams derived from one seed."""

import numpy as np

from encscale.seeds import named_seed


def _draws(seed: int, *names: str) -> list[int]:
    return np.random.default_rng(named_seed(seed, *names)).integers(0, 2**31, 4).tolist()


def test_named_seed_is_the_seed_and_a_hash_of_the_names():
    # the hash: the first 8 bytes of SHA-256("movie/s01e01b"), little-endian
    assert named_seed(7, "movie", "s01e01b") == [7, 13556410804524746326]
    assert named_seed(7) == [7, 1449310910991872227]  # SHA-256 of ""
    assert named_seed(7, "movie/s01e01b") == named_seed(7, "movie", "s01e01b")


def test_named_streams_are_reproducible_and_distinct():
    assert _draws(7, "movie", "a") == _draws(7, "movie", "a")
    assert _draws(7, "movie", "a") != _draws(7, "movie", "b")
    assert _draws(7, "movie", "a") != _draws(8, "movie", "a")
