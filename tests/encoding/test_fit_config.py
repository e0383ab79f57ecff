"""A fit as the workflow names it: size and draw from its file name, settings from the config."""

from __future__ import annotations

import numpy as np
import pytest

from encscale.encoding import fit

SETTINGS = {
    "n_folds": 4,
    "alphas": {"log10_min": -2, "log10_max": 3, "num": 6},
    "scoring": "r2",
    "subsample": "prefix",
    "device": "cpu",
}


@pytest.mark.parametrize(("size", "expected"), [("250", 250), (250, 250), ("all", None)])
def test_fit_encoding_from_config(monkeypatch, size, expected):
    calls = []
    monkeypatch.setattr(fit, "fit_encoding", lambda *args, **kwargs: calls.append((args, kwargs)))
    fit.fit_encoding_from_config(
        "resp.h5", "feats.h5", "out.h5", size=size, seed="3", settings=SETTINGS, provenance={}
    )
    ((args, kwargs),) = calls
    assert args == ("resp.h5", "feats.h5", "out.h5")
    alphas = kwargs.pop("alphas")
    np.testing.assert_allclose(alphas, [0.01, 0.1, 1.0, 10.0, 100.0, 1000.0])
    assert kwargs == dict(
        size=expected,
        seed=3,
        n_folds=4,
        pool_sizes=None,
        scoring="r2",
        subsample_mode="prefix",
        device="cpu",
        lag_mode="fir",  # a movie study's lag_mode; fir where the settings have none
        provenance={},
    )


def test_fit_encoding_from_config_passes_the_movie_studys_lag_mode(monkeypatch):
    calls = []
    monkeypatch.setattr(fit, "fit_encoding", lambda *args, **kwargs: calls.append(kwargs))
    settings = dict(SETTINGS, pool_sizes=[1, 2], lag_mode="select")
    fit.fit_encoding_from_config("r.h5", "f.h5", "o.h5", size="all", seed=0, settings=settings)
    assert calls[0]["lag_mode"] == "select" and calls[0]["pool_sizes"] == [1, 2]
