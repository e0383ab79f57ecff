"""Every fit of a subject × model in one job: equal to independent per-draw fits of the
engine, whatever the route, the memory budget or an interruption."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from encscale.contracts import read_fit
from encscale.encoding.fit import fit_encoding
from encscale.encoding.subject import fit_subject_model
from encscale.simulate.subject import SubjectShapes, write_synthetic_subject

ALPHAS = np.logspace(-2, 6, 9)
SHAPES = SubjectShapes(n_images=360, n_test=60, voxels=200, layers=3, channels=12, side=6)
DRAWS = [(40, 0), (120, 0), (120, 1), (280, 1)]
PARTS = ["best_set", "best_alpha", "cv_score", "set_scores", "train_rows", "test_pred", "test_r"]


@pytest.fixture(scope="module")
def subject(tmp_path_factory):
    directory = tmp_path_factory.mktemp("subject")
    features, responses, truth = write_synthetic_subject(directory, SHAPES, seed=3)
    return directory, features, responses, truth


def fit_all(subject, out, pool_sizes, **kwargs):
    _, features, responses, _ = subject
    out.mkdir(exist_ok=True)
    paths = {(n, s): out / f"n{n}_s{s}.h5" for n, s in DRAWS}
    routes = fit_subject_model(
        responses, features, paths, n_folds=5, alphas=ALPHAS, pool_sizes=pool_sizes, **kwargs
    )
    return paths, routes


def assert_same_fits(paths, reference, same_share=0.99, rtol=1e-4):
    for key, path in paths.items():
        got, ref = read_fit(path, PARTS), read_fit(reference[key], PARTS)
        same = (got.best_set == ref.best_set) & (got.best_alpha == ref.best_alpha)
        assert same.mean() >= same_share, key
        np.testing.assert_array_equal(got.train_rows, ref.train_rows)
        scale = np.abs(ref.test_pred).max()
        np.testing.assert_allclose(got.test_pred, ref.test_pred, rtol=0, atol=rtol * scale)


@pytest.fixture(scope="module")
def per_draw(subject, tmp_path_factory):
    """Independent per-draw fits of the engine (today's per-fit route), k = 1, 2, 3, 6."""
    _, features, responses, _ = subject
    out = tmp_path_factory.mktemp("per_draw")
    paths = {}
    for n, s in DRAWS:
        paths[n, s] = out / f"n{n}_s{s}.h5"
        fit_encoding(
            responses,
            features,
            paths[n, s],
            size=n,
            seed=s,
            n_folds=5,
            alphas=ALPHAS,
            pool_sizes=[1, 2, 3, 6],
        )
    return paths


@pytest.mark.parametrize("route", ["chosen", "kernel", "primal"])
def test_matches_per_draw_fits_on_either_route(subject, per_draw, tmp_path, route):
    """Sets of 12 to 432 columns against draws of 40 to 280 samples: p < n and p ≥ n."""
    names = [f"block{i:02d}/k{k}" for i in range(SHAPES.layers) for k in (1, 2, 3, 6)]
    forced = None if route == "chosen" else dict.fromkeys(names, route)
    paths, routes = fit_all(subject, tmp_path, [1, 2, 3, 6], routes=forced)
    if route == "chosen":  # narrow sets go primal, the 6 × 6 maps' 432 columns by the kernel
        assert routes["block00/k1"] == "primal" and routes["block00/k6"] == "kernel"
    assert_same_fits(paths, per_draw)


def test_memory_budget_forms_a_layer_in_several_groups(subject, per_draw, tmp_path, caplog):
    """A budget that holds one formed set at a time: each layer's map is read once per set."""
    caplog.set_level("INFO")
    paths, _ = fit_all(subject, tmp_path, [1, 2, 3, 6], max_memory=1)
    assert_same_fits(paths, per_draw)


def test_k_lists_all_and_capped(subject, tmp_path):
    """ "all" is k = 1 … 6 here; 8 and 6 are the same 6 × 6 grid, fitted once."""
    paths, routes = fit_all(subject, tmp_path / "all", "all")
    assert sorted(routes) == sorted(
        f"block{i:02d}/k{k}" for i in range(SHAPES.layers) for k in range(1, 7)
    )
    _, capped = fit_all(subject, tmp_path / "capped", [2, 6, 8])
    assert sorted(capped) == sorted(f"block{i:02d}/k{k}" for i in range(3) for k in (2, 6))
    fit = read_fit(paths[DRAWS[-1]], ["feature_sets", "best_set", "test_r"])
    assert len(fit.feature_sets) == 18


def test_recovers_planted_layers(subject, tmp_path):
    """The chosen layer is the planted one on most voxels with a clear signal."""
    _, _, _, truth = subject
    paths, _ = fit_all(subject, tmp_path, [1, 2, 4])
    fit = read_fit(paths[280, 1], ["best_set", "feature_sets", "test_r"])
    layer = np.array([int(name[5:7]) for name in fit.feature_sets])[fit.best_set]
    clear = truth["snr"] > 0.6
    assert (layer[clear] == truth["layer"][clear]).mean() >= 0.8
    assert np.median(fit.test_r[clear]) > 0.3


KILLED_RUN = """
import os, signal, sys
import numpy as np
from encscale.encoding.subject import fit_subject_model
out, features, responses = sys.argv[1:4]
paths = {{(n, s): f"{{out}}/n{{n}}_s{{s}}.h5" for n, s in {draws}}}

def progress(message):
    print(message, flush=True)
    if message.startswith("set 5/"):
        os.kill(os.getpid(), signal.SIGKILL)  # mid-way: half the sets are done

fit_subject_model(responses, features, paths, n_folds=5, alphas=np.logspace(-2, 6, 9),
                  pool_sizes=[1, 2, 3, 6], progress=progress)
"""


def test_killed_job_leaves_no_partial_file_and_reruns_equal(subject, per_draw, tmp_path):
    _, features, responses, _ = subject
    out = tmp_path / "killed"
    out.mkdir()
    script = textwrap.dedent(KILLED_RUN.format(draws=DRAWS))
    run = subprocess.run(
        [sys.executable, "-c", script, str(out), str(features), str(responses)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == -signal.SIGKILL, run.stderr
    assert "set 5/" in run.stdout
    assert os.listdir(out) == []  # nothing under a final name, no leftovers
    paths, _ = fit_all(subject, out, [1, 2, 3, 6])
    uninterrupted, _ = fit_all(subject, tmp_path / "whole", [1, 2, 3, 6])
    for key in paths:
        got, ref = read_fit(paths[key], PARTS), read_fit(uninterrupted[key], PARTS)
        for part in PARTS:
            np.testing.assert_array_equal(getattr(got, part), getattr(ref, part))


def test_training_pool_all_fits_every_image_like_a_train_split_holding_them(subject, tmp_path):
    """A submission's refit (training_pool="all") fits the train split, then the test split,
    exactly as a fit whose train split held both, and records its pool."""
    import shutil

    import h5py

    _, features, responses, _ = subject
    merged = tmp_path / "merged.h5"
    shutil.copy(responses, merged)
    with h5py.File(merged, "a") as h5:
        for name in ("responses", "stimulus", "n_repeats"):
            both = np.concatenate([h5[f"train/{name}"][()], h5[f"test/{name}"][()]])
            del h5[f"train/{name}"]
            h5[f"train/{name}"] = both
    n_all = SHAPES.n_images
    kwargs = dict(n_folds=5, alphas=ALPHAS, pool_sizes=[1, 3])
    pooled, reference = tmp_path / "all.h5", tmp_path / "merged_fit.h5"
    fit_subject_model(responses, features, {(n_all, 0): pooled}, training_pool="all", **kwargs)
    fit_subject_model(merged, features, {(n_all, 0): reference}, **kwargs)
    got, ref = read_fit(pooled, PARTS), read_fit(reference, PARTS)
    np.testing.assert_array_equal(got.train_rows, np.arange(n_all))
    for part in ("best_set", "best_alpha", "cv_score", "test_pred"):
        np.testing.assert_array_equal(getattr(got, part), getattr(ref, part), err_msg=part)
    assert got.attrs["training_pool"] == "all" and ref.attrs["training_pool"] == "train"
    with pytest.raises(ValueError, match="training_pool must be 'train' or 'all'"):
        fit_subject_model(responses, features, {(n_all, 0): pooled}, training_pool="x", **kwargs)


def test_fixed_feature_set_fits_one_layer_at_one_k(subject, tmp_path):
    """layers: only that layer's pooled sets (no other layer, no prefix set); equal to the
    same layer's set in a fit over every set, where both choose it and its penalty."""
    from encscale.contracts import open_features

    _, features, responses, _ = subject
    with open_features(features) as f:
        layer = f.maps[1].layer
    kwargs = dict(n_folds=5, alphas=ALPHAS, pool_sizes=[3])
    one = tmp_path / "one.h5"
    fit_subject_model(responses, features, {(120, 0): one}, layers=[layer], **kwargs)
    fit = read_fit(one, [*PARTS, "feature_sets"])
    assert fit.feature_sets.astype(str).tolist() == [f"{layer}/k3"]
    assert (fit.best_set == 0).all()
    every = tmp_path / "every.h5"
    fit_subject_model(responses, features, {(120, 0): every}, **kwargs)
    ref = read_fit(every, [*PARTS, "feature_sets"])
    row = ref.feature_sets.astype(str).tolist().index(f"{layer}/k3")
    np.testing.assert_array_equal(fit.set_scores[0], ref.set_scores[row])
    chose = ref.best_set == row
    assert chose.any()
    np.testing.assert_array_equal(fit.best_alpha[chose], ref.best_alpha[chose])
    np.testing.assert_allclose(fit.test_pred[:, chose], ref.test_pred[:, chose], rtol=1e-6)
    with pytest.raises(ValueError, match=r"no layer \['nope'\]; its layers are"):
        fit_subject_model(responses, features, {(120, 0): one}, layers=["nope"], **kwargs)
