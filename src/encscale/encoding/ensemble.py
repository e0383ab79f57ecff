"""The ensemble: the mean of several models' predictions, scored like one model's fit.

Its file, ``fits/{subject}/ensemble/n{size}_s{seed}.h5``, has the layout of a fit
(:mod:`encscale.encoding.fit`) restricted to ``test_pred``, ``test_r`` and ``challenge_pred``,
with the attrs ``subject``, ``model`` ("ensemble"), ``members``, ``n_params`` (the
members' sum), ``size`` and ``seed``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from encscale.io import create_h5, open_h5, read_dataset
from encscale.metrics import pearson_r

log = logging.getLogger(__name__)


ENSEMBLE = "ensemble"


def ensemble_fit(
    member_paths: list[str | Path],
    responses_path: str | Path,
    out_path: str | Path,
    provenance: Mapping[str, Any] | None = None,
) -> None:
    """The ensemble of several models' fits (same subject, size and draw): the mean of their
    predictions, scored on the test split like one model's.

    Writes ``test_pred``, ``test_r`` (and ``challenge_pred`` when every member has it);
    attrs ``model`` "ensemble", ``members``, ``n_params`` (their sum), ``subject``,
    ``size``, ``seed``.
    """
    if len(member_paths) < 2:
        raise ValueError(f"{out_path}: an ensemble needs two fits or more")
    preds, challenge, members, n_params, meta = [], [], [], 0, None
    for path in member_paths:
        with open_h5(path, "fit") as fit:
            attrs = {k: fit.attrs[k] for k in ("subject", "size", "seed")}
            if meta is None:
                meta = attrs
            elif attrs != meta:
                raise ValueError(f"{path}: fit of {attrs}, but {member_paths[0]} is of {meta}")
            preds.append(read_dataset(fit, "test_pred", ndim=2))
            if "challenge_pred" in fit:
                challenge.append(read_dataset(fit, "challenge_pred", ndim=2))
            members.append(str(fit.attrs["model"]))
            n_params += int(fit.attrs["n_params"])
        if preds[-1].shape != preds[0].shape:
            raise ValueError(
                f"{path}: test_pred {preds[-1].shape}, but {member_paths[0]} has {preds[0].shape}"
            )
    with open_h5(responses_path, "responses") as resp:
        y_test = read_dataset(resp, "test/responses", ndim=2)
    if y_test.shape != preds[0].shape:
        raise ValueError(f"{responses_path}: test/responses {y_test.shape}, fits {preds[0].shape}")
    test_pred = np.mean(preds, axis=0, dtype=np.float64).astype(np.float32)
    test_r = pearson_r(y_test, test_pred).astype(np.float32)
    log.info("ensemble of %s: mean test r = %.4f", ", ".join(members), float(test_r.mean()))
    with create_h5(out_path, provenance) as out:
        out["test_pred"] = test_pred
        out["test_r"] = test_r
        if len(challenge) == len(preds):
            out["challenge_pred"] = np.mean(challenge, axis=0, dtype=np.float64).astype(np.float32)
        out.attrs.update(meta, model=ENSEMBLE, members=members, n_params=n_params)
