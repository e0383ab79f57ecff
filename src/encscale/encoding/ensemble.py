"""The ensemble: the mean of several models' predictions, scored like one model's fit.

Its file, ``fits/{subject}/ensemble/n{size}_s{seed}.h5``, is a fit file with predictions
and their r only (layout: :mod:`encscale.contracts`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from encscale.contracts import Fit, read_fit, read_responses, write_fit
from encscale.metrics import pearson_r

log = logging.getLogger(__name__)


ENSEMBLE = "ensemble"


def study_fits(config: Mapping[str, Any], sizes: Sequence[int]) -> list[tuple[str, int]]:
    """(model, size) pairs an image study's outputs need, ``sizes`` its sorted
    ``encoding.sizes``: the scaling's data model at every size, every model at
    ``scaling.param_size``, the final model at ``final.size``, with two ensemble members or
    more the ensemble at the parameter-scaling and final sizes, in an Algonauts study the
    submitted models at ``submission.size``; an ensemble needs its members at its sizes.
    Absent keys take the config schema's defaults (the last model, the largest size)."""
    models = list(config["models"])
    scaling, final = config.get("scaling") or {}, config.get("final") or {}
    data_model = scaling.get("data_model", models[-1])
    param_size = scaling.get("param_size", sizes[-1])
    final_pair = (final.get("model", data_model), final.get("size", sizes[-1]))
    members = ensemble_members(config)
    pairs = {(data_model, size) for size in sizes} | {(model, param_size) for model in models}
    pairs.add(final_pair)
    if len(members) >= 2:
        pairs |= {(ENSEMBLE, param_size), (ENSEMBLE, final_pair[1])}
    if config["dataset"] == "algonauts2023":
        submission = config.get("submission") or {}
        size = submission.get("size", sizes[-1])
        pairs |= {(model, size) for model in submission.get("models", models)}
    pairs |= {(m, size) for model, size in pairs if model == ENSEMBLE for m in members}
    return sorted(pairs)


def ensemble_members(config: Mapping[str, Any]) -> list[str]:
    """``ensemble.models``: by default every model."""
    return list((config.get("ensemble") or {}).get("models", config["models"]))


def predicted_sizes(
    config: Mapping[str, Any], sizes: Sequence[int], model: str
) -> list[int] | None:
    """The sizes at which ``model``'s fit files keep their test predictions: every size
    (None), or with ``encoding.predictions`` needed only those an ensemble reads."""
    if config["encoding"].get("predictions", "all") == "all":
        return None
    members = ensemble_members(config)
    if model not in members or len(members) < 2:
        return []
    return sorted({size for m, size in study_fits(config, sizes) if m == ENSEMBLE})


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
