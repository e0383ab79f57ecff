"""The GPT-2's held-out validation episodes: split from the pre-training movies by episode,
never the test season's."""

import pytest

from encscale.video.heldout import episode, episodes, last_episode, split_validation
from encscale.video.selection import select_movies

# A CNeuroMod-like release: Friends seasons 1–6, two runs (a, b) per episode, and a film
FRIENDS = [f"friends_s{s:02d}e{e:02d}{p}" for s in range(1, 7) for e in (1, 2, 24) for p in "ab"]
AVAILABLE = [*FRIENDS, "bourne01", "bourne02"]


def test_episodes_of_friends_runs_and_film_parts():
    assert episode("friends_s01e02a") == episode("friends_s01e02b") == "friends_s01e02"
    assert episode("bourne01") == episode("bourne02") == "bourne"
    assert episode("something_else") == "something_else"


def test_held_out_episodes_share_none_with_training_or_the_test_season():
    """The study's split (config/cneuromod.yaml): test season 6, pre-training seasons 1–5,
    one episode a season held out to validate GPT-2."""
    test = select_movies(AVAILABLE, ["friends_s06*"])
    pretrain = [m for m in select_movies(AVAILABLE, ["friends_s0[1-6]*"]) if m not in test]
    validation = select_movies(AVAILABLE, ["friends_s0[1-5]e24*"])
    train, val = split_validation(pretrain, validation, test)
    assert val == validation and len(val) == 10
    assert not episodes(train) & episodes(val)
    assert not episodes(val) & episodes(test)
    assert all(not m.startswith("friends_s06") for m in val + train)
    assert sorted(train + val) == pretrain  # nothing else left out
    # a single run of an episode takes the whole episode out of training
    train, val = split_validation(pretrain, ["friends_s03e02a"], test)
    assert val == ["friends_s03e02a"]
    assert "friends_s03e02b" not in train and "friends_s03e02a" not in train
    assert len(train) == len(pretrain) - 2


def test_default_is_the_last_pre_training_episode():
    pretrain = ["friends_s01e01a", "friends_s01e01b", "friends_s01e02a", "friends_s01e02b"]
    assert last_episode(pretrain) == ["friends_s01e02a", "friends_s01e02b"]
    train, val = split_validation(pretrain, None, ["friends_s01e03a"])
    assert (train, val) == (pretrain[:2], pretrain[2:])


def test_bad_splits_are_named():
    test = ["friends_s06e01a", "friends_s06e01b"]
    with pytest.raises(ValueError, match=r"\['friends_s06e01'\] are the encoding's test"):
        split_validation(["friends_s01e01a"], ["friends_s06e01b"], test)
    with pytest.raises(ValueError, match="leaves no pre-training movie"):
        split_validation(["friends_s01e01a", "friends_s01e01b"], None, test)
