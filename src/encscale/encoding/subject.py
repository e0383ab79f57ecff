"""Every fit of one subject × model in one job, from shared kernels.

The job reads each layer's map for the subject's rows once (every draw's training rows,
the test and the challenge images), forms each (layer, k) set once on the fit's device and,
for a wide set, its linear kernel over all those rows once (the kernel route); each
training size × draw then works on its block of the kernel (exact centring per draw, the
leave-group-out identity of :func:`encscale.encoding.ridge.lgo_scores` for the folds). A
narrow set is factorised per draw from its features instead (the primal route), where that
is cheaper (:func:`encscale.encoding.plan.choose_route`). Per draw only the running best
(set, penalty, score) of every voxel and the evaluation rows' predictions of the best set
so far are kept, so nothing per set outlives it. The fit files are those of
:func:`encscale.encoding.fit.fit_encoding` (layout: :mod:`encscale.contracts`), each
written whole under its final name.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from encscale.contracts import (
    FeatureSet,
    FeaturesFile,
    Fit,
    LayerMap,
    open_features,
    read_responses,
    response_shapes,
    write_fit,
)
from encscale.encoding import plan
from encscale.encoding.fit import config_alphas, subsample
from encscale.encoding.ridge import (
    available_memory,
    best_alpha_index,
    edge_gain,
    factorise_features,
    factorise_kernel,
    is_better,
    kernel_projection,
    kfold_splits,
    lgo_scores,
)
from encscale.io import atomic_path, file_identity
from encscale.metrics import pearson_r
from encscale.vision.layers import maxpool_tokens

log = logging.getLogger(__name__)


@dataclass
class Draw:
    """One training size × draw: its rows and targets, and the best choices so far."""

    size: int
    seed: int
    train_rows: np.ndarray  # (size,) rows of the responses file's train split
    positions: torch.Tensor  # (size,) the rows' positions among the job's stimuli
    folds: list[tuple[np.ndarray, np.ndarray]]
    y: np.ndarray  # (size, V) float32
    best_score: np.ndarray  # (V,)
    best_alpha: np.ndarray  # (V,)
    best_set: np.ndarray  # (V,) int64
    set_scores: np.ndarray  # (S, V) float32
    edge_gain: np.ndarray  # (V,) float32: the chosen penalty's edge_gain
    eval_pred: np.ndarray  # (n_eval, V) float32: test rows, then challenge rows


def fit_subject_model(
    responses_path: str | Path,
    features_path: str | Path | Any,
    out_paths: Mapping[tuple[int, int], str | Path],
    *,
    n_folds: int,
    alphas: np.ndarray,
    pool_sizes: Sequence[int] | str | None,
    scoring: str = "r",
    subsample_mode: str = "random",
    device: str = "cpu",
    dtype: torch.dtype = torch.float32,
    max_memory: int | None = None,
    routes: Mapping[str, str] | None = None,
    training_pool: str = "train",
    layers: Sequence[str] | None = None,
    predict_sizes: Collection[int] | None = None,
    provenance: Mapping[str, Any] | None = None,
    progress: Callable[[str], None] = log.info,
) -> dict[str, str]:
    """Fit every (size, seed) of ``out_paths`` for one subject × model and write each fit file.

    ``max_memory`` (bytes, default: what the machine has available) bounds the sets formed
    at once and the voxel batches; ``routes`` forces a route per set name (``kernel`` or
    ``primal``), for tests and benchmarks. ``training_pool``: the rows the draws come from,
    ``train`` (the train split) or ``all`` (the train split, then the test split: a
    submission's refit on every image; its test predictions are then in-sample, and the
    fit files say so in their ``training_pool`` attribute). ``layers``: fit only these
    layers' pooled sets (e.g. one layer and one k: a fixed feature set). ``features_path``
    may also be a source of maps computed by the model (:class:`encscale.vision.live.ModelMaps`,
    ``features.store: none``). ``predict_sizes``: the sizes whose fit files keep
    ``test_pred`` (None: every size; ``encoding.predictions: needed``); every file has
    ``test_r``. Returns each set's route.
    """
    alphas = np.asarray(alphas, dtype=np.float64)
    resp = read_responses(responses_path, ["train", "test"], optional=["challenge"])
    subject = str(resp.attrs.get("subject", Path(responses_path).stem))
    pool_y, pool_stimulus = _training_pool(resp, training_pool)
    n_available = len(pool_y)
    draw_rows = {}
    for size, seed in out_paths:
        try:
            draw_rows[size, seed] = subsample(n_available, size, seed, subsample_mode)
        except ValueError as err:
            raise ValueError(f"{responses_path}: {err}") from err
    challenge = resp.challenge_stimulus
    eval_stimuli = np.concatenate(
        [resp.test.stimulus, challenge if challenge is not None else np.empty(0, np.int64)]
    )
    used = np.concatenate([pool_stimulus[r] for r in draw_rows.values()] + [eval_stimuli])
    stimuli = np.unique(used)  # the job's rows of the features file, sorted
    eval_pos = torch.as_tensor(np.searchsorted(stimuli, eval_stimuli), device=device)
    voxels = pool_y.shape[1]

    with _open_source(features_path) as features:
        _check_rows(features, stimuli, responses_path)
        sets = features.fit_sets(pool_sizes)
        if layers is not None:
            sets = _layer_sets(features, sets, layers)
        shapes = plan.FitShapes(
            rows=stimuli.size,
            n_train=n_available,
            n_eval=eval_stimuli.size,
            voxels=voxels,
            draws=[size for size, _ in out_paths],
            widths=[fs.width for fs in sets],
            n_alphas=alphas.size,
            n_folds=n_folds,
            map_values=max((m.channels * m.height * m.width for m in features.maps), default=0),
            ks_per_layer=max(_sets_per_layer(sets).values(), default=1),
        )
        route = {
            fs.name: (routes or {}).get(fs.name)
            or plan.choose_route(fs.width, shapes.rows, shapes.draws, shapes.n_eval)
            for fs in sets
        }
        budget = max_memory or available_memory()
        if torch.device(device).type == "cuda":  # the formed sets live in device memory
            budget = min(budget, torch.cuda.mem_get_info(torch.device(device))[0])
        voxel_batch = plan.default_voxel_batch(shapes, budget)
        progress(
            f"{subject} {features.model}: {len(sets)} feature sets × {len(out_paths)} draws, "
            f"{stimuli.size} stimuli, {voxels} voxels; peak memory ≈ "
            f"{plan.peak_bytes(shapes) / 2**30:.2f} GiB (budget {budget / 2**30:.2f} GiB)"
        )
        draws = [
            _new_draw(
                pool_y,
                stimuli,
                pool_stimulus,
                size,
                seed,
                rows,
                n_folds,
                len(sets),
                eval_stimuli.size,
                device,
            )
            for (size, seed), rows in draw_rows.items()
        ]
        # a source that runs the model resumes after its last completed group of layers
        ends = features.group_ends(stimuli.size) if hasattr(features, "group_ends") else set()
        resume = _resume_path(out_paths) if ends else None
        signature = _signature(
            sets, draws, alphas, scoring, n_folds, features.model, responses_path
        )
        start = _resume(resume, signature, draws, progress) if resume else 0
        started = time.perf_counter()
        for f, fs, formed in _formed_sets(
            features, sets, stimuli, route, budget - plan.fixed_bytes(shapes), device, start
        ):
            for draw in draws:
                u64, s, a_eval = _factorise(formed, route[fs.name], draw.positions, eval_pos)
                _update(draw, f, u64, s, a_eval, alphas, scoring, dtype, voxel_batch)
            del formed
            last_of_layer = f + 1 == len(sets) or sets[f + 1].layer != fs.layer
            if resume and last_of_layer and fs.layer in ends and f + 1 < len(sets):
                _save_resume(resume, signature, f + 1, draws)
            elapsed = time.perf_counter() - started
            left = elapsed / (f + 1 - start) * (len(sets) - f - 1)  # the mean time per set
            progress(
                f"set {f + 1}/{len(sets)} {fs.name} ({fs.width} features, {route[fs.name]} route) "
                f"done after {elapsed:.1f} s, ~{left:.0f} s left"
            )
        model, n_params = features.model, features.n_params

    n_test = len(resp.test.stimulus)
    for draw in draws:
        test_pred = draw.eval_pred[:n_test]
        fit = Fit(
            best_set=draw.best_set,
            feature_sets=np.array([fs.name for fs in sets]),
            set_depth=np.array([fs.depth for fs in sets]),
            best_alpha=draw.best_alpha,
            cv_score=draw.best_score,
            set_scores=draw.set_scores,
            edge_gain=draw.edge_gain,
            train_rows=draw.train_rows,
            test_pred=test_pred if predict_sizes is None or draw.size in predict_sizes else None,
            test_r=pearson_r(resp.test.responses, test_pred).astype(np.float32),
            challenge_pred=draw.eval_pred[n_test:] if challenge is not None else None,
            attrs=dict(
                subject=subject,
                model=model,
                n_params=n_params,
                size=draw.size,
                seed=draw.seed,
                n_folds=n_folds,
                scoring=scoring,
                alphas=alphas,
                training_pool=training_pool,
            ),
        )
        write_fit(out_paths[draw.size, draw.seed], fit, provenance)
        progress(f"n={draw.size} seed={draw.seed}: mean test r = {float(fit.test_r.mean()):.4f}")
    if resume:
        resume.unlink(missing_ok=True)
    return route


RESUMED = ("best_score", "best_alpha", "best_set", "set_scores", "edge_gain", "eval_pred")


def _resume_path(out_paths: Mapping[tuple[int, int], str | Path]) -> Path:
    """Where a job that runs the model keeps its progress: beside its fit files."""
    return Path(next(iter(out_paths.values()))).parent / ".resume.npz"


def _signature(
    sets: Sequence[FeatureSet],
    draws: Sequence[Draw],
    alphas: np.ndarray,
    scoring: str,
    n_folds: int,
    model: str,
    responses_path: str | Path,
) -> str:
    """What a saved state must match to be resumed: the responses file (its size and time),
    the sets, draws and their rows, penalties and scoring."""
    identity = (model, [fs.name for fs in sets], scoring, n_folds, file_identity(responses_path))
    h = hashlib.sha256(repr(identity).encode())
    h.update(np.asarray(alphas, np.float64).tobytes())
    for draw in draws:
        h.update(f"{draw.size},{draw.seed}".encode())
        h.update(draw.train_rows.tobytes())
    return h.hexdigest()


def _save_resume(path: Path, signature: str, next_set: int, draws: Sequence[Draw]) -> None:
    """Every draw's running best after the sets before ``next_set``, written atomically."""
    arrays = {f"{name}_{i}": getattr(d, name) for i, d in enumerate(draws) for name in RESUMED}
    with atomic_path(path) as tmp, open(tmp, "wb") as file:
        np.savez(file, signature=signature, next_set=next_set, **arrays)


def _resume(path: Path, signature: str, draws: Sequence[Draw], progress: Callable) -> int:
    """The first set to fit: after a saved state that matches ``signature`` (the draws'
    running best restored from it), else 0."""
    if not path.is_file():
        return 0
    try:
        with np.load(path) as saved:
            if str(saved["signature"]) != signature:
                progress(f"{path}: saved by another job's settings; starting from the first set")
                return 0
            state = {(i, name): saved[f"{name}_{i}"] for i in range(len(draws)) for name in RESUMED}
            start = int(saved["next_set"])
    except (OSError, KeyError, ValueError) as err:
        progress(f"{path}: cannot resume ({err}); starting from the first set")
        return 0
    for (i, name), value in state.items():  # restored only once the whole state is read
        getattr(draws[i], name)[...] = value
    progress(f"resuming at set {start + 1} from {path}")
    return start


def _open_source(features: str | Path | Any) -> AbstractContextManager:
    """A features file opened for reading, or a source with its reading side (a
    :class:`encscale.vision.live.ModelMaps`: maps computed by the model) as it is."""
    if isinstance(features, str | Path):
        return open_features(features)
    return nullcontext(features)


def _layer_sets(
    features: FeaturesFile, sets: Sequence[FeatureSet], layers: Sequence[str]
) -> list[FeatureSet]:
    """The pooled sets (no prefix set) of ``layers``; a ValueError naming a missing one."""
    names = list(dict.fromkeys(fs.layer for fs in sets))
    missing = [layer for layer in layers if layer not in names]
    if missing:
        raise ValueError(f"{features.path}: no layer {missing}; its layers are {names}")
    return [fs for fs in sets if fs.layer in layers and fs.k > 0]


def _training_pool(resp: Any, pool: str) -> tuple[np.ndarray, np.ndarray]:
    """Responses (n, V) and stimulus rows (n,) the draws come from (see ``training_pool``)."""
    if pool == "train":
        return resp.train.responses, resp.train.stimulus
    if pool == "all":
        return (
            np.concatenate([resp.train.responses, resp.test.responses]),
            np.concatenate([resp.train.stimulus, resp.test.stimulus]),
        )
    raise ValueError(f"training_pool must be 'train' or 'all', got {pool!r}")


def _check_rows(features: FeaturesFile, stimuli: np.ndarray, responses_path: str | Path) -> None:
    if stimuli.size and stimuli.max() >= features.n_stimuli:
        raise ValueError(
            f"{responses_path}: the samples' stimulus rows reach {stimuli.max()}, but "
            f"{features.path} has {features.n_stimuli} stimuli"
        )


def _sets_per_layer(sets: Sequence[FeatureSet]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for fs in sets:
        counts[fs.layer] = counts.get(fs.layer, 0) + 1
    return counts


def _new_draw(
    responses: np.ndarray,
    stimuli: np.ndarray,
    train_stimulus: np.ndarray,
    size: int,
    seed: int,
    rows: np.ndarray,
    n_folds: int,
    n_sets: int,
    n_eval: int,
    device: str,
) -> Draw:
    voxels = responses.shape[1]
    return Draw(
        size=size,
        seed=seed,
        train_rows=rows,
        positions=torch.as_tensor(np.searchsorted(stimuli, train_stimulus[rows]), device=device),
        folds=kfold_splits(size, n_folds, seed=seed),
        y=np.ascontiguousarray(responses[rows], dtype=np.float32),
        best_score=np.full(voxels, -np.inf),
        best_alpha=np.full(voxels, -np.inf),
        best_set=np.zeros(voxels, dtype=np.int64),
        set_scores=np.empty((n_sets, voxels), dtype=np.float32),
        edge_gain=np.zeros(voxels, dtype=np.float32),
        eval_pred=np.zeros((n_eval, voxels), dtype=np.float32),
    )


def _formed_sets(
    features: FeaturesFile,
    sets: Sequence[FeatureSet],
    stimuli: np.ndarray,
    route: Mapping[str, str],
    budget: int,
    device: str,
    start: int = 0,
) -> Iterator[tuple[int, FeatureSet, torch.Tensor]]:
    """(index, set, formed) in set order from set ``start``: formed is the set's float64
    kernel over the job's stimuli (kernel route) or its float32 features (primal route), on
    ``device``.

    A layer's pooled sets are formed together from one read of its map, in channel chunks,
    as many at once as ``budget`` bytes hold (the rest from further reads).
    """
    maps = {m.layer: m for m in features.maps}
    f = start
    while f < len(sets):
        fs = sets[f]
        if not fs.from_map:
            x = torch.as_tensor(features.read_rows(fs, stimuli), device=device)
            yield f, fs, _form(x, route[fs.name])
            f += 1
            continue
        group = [fs]
        held = plan.set_bytes(route[fs.name], fs.width, stimuli.size)
        while f + len(group) < len(sets):
            nxt = sets[f + len(group)]
            need = plan.set_bytes(route[nxt.name], nxt.width, stimuli.size)
            if not nxt.from_map or nxt.layer != fs.layer or held + need > budget:
                break
            group.append(nxt)
            held += need
        formed = _pool_layer(features, maps[fs.layer], group, stimuli, route, device)
        for offset, (member, x) in enumerate(zip(group, formed, strict=True)):
            yield f + offset, member, x
        f += len(group)


def _form(x: torch.Tensor, route: str) -> torch.Tensor:
    if route == "kernel":
        x64 = x.to(torch.float64)
        return x64 @ x64.T
    return x.to(torch.float32)


def _pool_layer(
    features: FeaturesFile,
    layer: LayerMap,
    group: Sequence[FeatureSet],
    stimuli: np.ndarray,
    route: Mapping[str, str],
    device: str,
) -> list[torch.Tensor]:
    """The sets of ``group`` (one layer's k × k poolings) formed from one read of its map."""
    n = stimuli.size
    formed = []
    for fs in group:
        if route[fs.name] == "kernel":
            formed.append(torch.zeros((n, n), dtype=torch.float64, device=device))
        else:
            formed.append(torch.empty((n, fs.width), dtype=torch.float32, device=device))
    per_channel = 4 * n * layer.height * layer.width
    step = max(1, plan.CHUNK_BYTES // per_channel)
    for c0 in range(0, layer.channels, step):
        c1 = min(layer.channels, c0 + step)
        chunk = torch.as_tensor(features.read_map(layer, stimuli, slice(c0, c1)), device=device)
        for fs, x in zip(group, formed, strict=True):
            pooled = maxpool_tokens(chunk, fs.k, plan.POOL_INDEX_BYTES)
            if route[fs.name] == "kernel":  # float64 products, a block of columns at a time
                for j in range(0, pooled.shape[1], plan.KERNEL_BLOCK):
                    p64 = pooled[:, j : j + plan.KERNEL_BLOCK].to(torch.float64)
                    x.addmm_(p64, p64.T)
            else:
                k2 = pooled.shape[1] // (c1 - c0)
                x[:, c0 * k2 : c1 * k2] = pooled
            del pooled
        del chunk
    return formed


def _factorise(
    formed: torch.Tensor, route: str, positions: torch.Tensor, eval_pos: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One draw's U (n, r), s (r,), float64, and its evaluation rows projected, A (m, r)."""
    if route == "kernel":
        u64, s, col_mean = factorise_kernel(formed[positions][:, positions])
        a_eval = kernel_projection(formed[eval_pos][:, positions], col_mean, u64, s)
        return u64, s, a_eval
    u64, s, v, mean = factorise_features(formed[positions])
    return u64, s, (formed[eval_pos].to(torch.float64) - mean) @ v


def _update(
    draw: Draw,
    f: int,
    u64: torch.Tensor,
    s: torch.Tensor,
    a_eval: torch.Tensor,
    alphas: np.ndarray,
    scoring: str,
    dtype: torch.dtype,
    voxel_batch: int,
) -> None:
    """Cross-validate set f on one draw; where it beats the best so far, take it and its
    evaluation predictions, mean(y) + A diag(s / (s² + α)) UᵀY."""
    folds = [(torch.as_tensor(t), torch.as_tensor(v)) for t, v in draw.folds]
    scores, proj = lgo_scores(draw.y, alphas, folds, scoring, dtype, voxel_batch, u64, s)
    index = best_alpha_index(scores, alphas)
    score, alpha = scores.max(axis=0), alphas[index]
    draw.set_scores[f] = score
    better = is_better(score, alpha, draw.best_score, draw.best_alpha)
    draw.best_score[better], draw.best_alpha[better], draw.best_set[better] = (
        score[better],
        alpha[better],
        f,
    )
    draw.edge_gain[better] = edge_gain(scores, alphas, index)[better]
    cols = np.flatnonzero(better)
    if cols.size == 0:
        return
    y = draw.y[:, cols]
    constant = torch.as_tensor((y == y[:1]).all(0), device=proj.device)
    cols_t = torch.as_tensor(cols, device=proj.device)
    proj_b = torch.where(constant, 0.0, proj[:, cols_t])
    s_t = s.to(dtype)
    alpha_t = torch.as_tensor(alpha[cols], dtype=dtype, device=proj.device)
    shrink = s_t[:, None] / (s_t[:, None] ** 2 + alpha_t)
    pred = a_eval.to(dtype) @ (shrink * proj_b)
    mean_y = torch.as_tensor(y.mean(0, dtype=np.float64), device=proj.device)
    draw.eval_pred[:, cols] = (pred.double() + mean_y).cpu().numpy()


def fit_submission_from_config(
    responses_path: str | Path,
    features_path: str | Path,
    out_path: str | Path,
    *,
    settings: Mapping[str, Any],
    declared_mb: int | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """A submission's fit of one subject × model on every training image of the download
    (the train and the held-out test split, as the first study refit before submitting):
    its (set, penalty) per voxel chosen by the same cross-validation as the other fits.
    ``settings``, ``declared_mb``: as :func:`fit_subject_model_from_config`."""
    sizes = response_shapes(responses_path)
    n_all = sizes["n_train"] + sizes["n_test"]
    return fit_subject_model(
        responses_path,
        features_path,
        {(n_all, 0): out_path},
        training_pool="all",
        **_fit_options(settings, declared_mb),
        provenance=provenance,
    )


def fit_subject_model_from_config(
    responses_path: str | Path,
    features_path: str | Path,
    out_paths: Sequence[str | Path],
    *,
    settings: Mapping[str, Any],
    declared_mb: int | None = None,
    layers: Sequence[str] | None = None,
    predict_sizes: Collection[int] | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """:func:`fit_subject_model` as the workflow names its fits: ``out_paths`` the fit files
    ``…/n{size}_s{seed}.h5``, ``settings`` the study's ``encoding`` config (``n_folds``,
    ``alphas``, ``pool_sizes``, ``scoring``, ``subsample``, ``device``, ``max_memory_mb``);
    ``declared_mb``: the job's memory request, the default budget; ``layers``: only
    these layers' sets; ``predict_sizes``: the sizes whose files keep ``test_pred``."""
    by_draw = {}
    for path in out_paths:
        size, seed = Path(path).stem.removeprefix("n").split("_s")
        by_draw[int(size), int(seed)] = path
    return fit_subject_model(
        responses_path,
        features_path,
        by_draw,
        **_fit_options(settings, declared_mb),
        layers=layers,
        predict_sizes=predict_sizes,
        provenance=provenance,
    )


def _fit_options(settings: Mapping[str, Any], declared_mb: int | None) -> dict[str, Any]:
    """:func:`fit_subject_model`'s options from the study's ``encoding`` config."""
    max_memory = settings.get("max_memory_mb") or declared_mb
    return dict(
        n_folds=settings["n_folds"],
        alphas=config_alphas(settings),
        pool_sizes=settings.get("pool_sizes"),
        scoring=settings["scoring"],
        subsample_mode=settings["subsample"],
        device=settings["device"],
        max_memory=None if max_memory is None else int(max_memory) * 2**20,
    )
