"""The ensemble: the mean of several models' predictions, scored like one model's fit.

Its file, ``fits/{subject}/ensemble/n{size}_s{seed}.h5``, is a fit file with predictions
and their r only (layout: :mod:`encscale.contracts`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from encscale.contracts import Fit, read_fit, read_responses, write_fit
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

    Writes the test predictions and their r (and the challenge predictions when every
    member has them); attrs ``model`` "ensemble", ``members``, ``n_params`` (their sum),
    ``subject``, ``size``, ``seed``.
    """
    if len(member_paths) < 2:
        raise ValueError(f"{out_path}: an ensemble needs two fits or more")
    preds, challenge, members, n_params, meta = [], [], [], 0, None
    for path in member_paths:
        fit = read_fit(path, ["test_pred"], optional=["challenge_pred"])
        attrs = {k: fit.attrs[k] for k in ("subject", "size", "seed")}
        if meta is None:
            meta = attrs
        elif attrs != meta:
            raise ValueError(f"{path}: fit of {attrs}, but {member_paths[0]} is of {meta}")
        preds.append(fit.test_pred)
        if fit.challenge_pred is not None:
            challenge.append(fit.challenge_pred)
        members.append(str(fit.attrs["model"]))
        n_params += int(fit.attrs["n_params"])
        if preds[-1].shape != preds[0].shape:
            raise ValueError(
                f"{path}: test predictions {preds[-1].shape}, but {member_paths[0]} has "
                f"{preds[0].shape}"
            )
    y_test = read_responses(responses_path, ["test"]).test.responses
    if y_test.shape != preds[0].shape:
        raise ValueError(f"{responses_path}: test responses {y_test.shape}, fits {preds[0].shape}")
    test_pred = np.mean(preds, axis=0, dtype=np.float64).astype(np.float32)
    test_r = pearson_r(y_test, test_pred).astype(np.float32)
    log.info("ensemble of %s: mean test r = %.4f", ", ".join(members), float(test_r.mean()))
    challenge_pred = None
    if len(challenge) == len(preds):
        challenge_pred = np.mean(challenge, axis=0, dtype=np.float64).astype(np.float32)
    attrs = dict(meta, model=ENSEMBLE, members=members, n_params=n_params)
    write_fit(
        out_path,
        Fit(test_pred=test_pred, test_r=test_r, challenge_pred=challenge_pred, attrs=attrs),
        provenance,
    )
