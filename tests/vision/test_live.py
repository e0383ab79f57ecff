"""Layer maps computed by the model at fit time (features.store: none) give the fits that
the features file gives, whatever the layer groups the memory budget makes."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import SIM_PARAMS
from encscale.contracts import layer_groups, read_fit
from encscale.data.prepare import prepare_stimuli, prepare_subject
from encscale.encoding.subject import fit_subject_model
from encscale.simulate.nsd import simulate_nsd
from encscale.vision.extract import extract_features
from encscale.vision.live import ModelMaps

SPEC = {
    "timm": "convnext_atto",
    "kwargs": {"dims": [8, 16, 24, 32], "depths": [1, 1, 1, 1]},
    "weights": "random",
    "seed": 0,
    "input_size": 32,
}
NAMED = {**SPEC, "layers": ["stem", "stages.*.blocks.*"]}
DRAWS = [(60, 0), (150, 0)]
FIT = dict(n_folds=5, alphas=np.logspace(-2, 6, 9), pool_sizes=[1, 2, 4])
PARTS = ["best_set", "best_alpha", "test_pred", "test_r"]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    base = tmp_path_factory.mktemp("live")
    simulate_nsd(base / "raw", SIM_PARAMS)
    prepare_stimuli(base / "raw", ["subj01"], base / "stimuli.h5")
    prepare_subject(base / "raw", "subj01", base / "stimuli.h5", base / "subj01.h5")
    return base


def fit(study, source, out):
    paths = {(n, s): out / f"n{n}_s{s}.h5" for n, s in DRAWS}
    out.mkdir()
    fit_subject_model(study / "subj01.h5", source, paths, **FIT)
    return {key: read_fit(path, PARTS) for key, path in paths.items()}


@pytest.mark.parametrize("spec", [SPEC, NAMED], ids=["block indices", "named layers"])
@pytest.mark.parametrize("max_bytes", [1, 2**30], ids=["a group per layer", "one group"])
def test_fits_from_the_model_equal_the_fits_from_its_features_file(
    study, tmp_path, spec, max_bytes
):
    features = tmp_path / "features.h5"
    extract_features(study / "stimuli.h5", features, "atto", spec, batch_size=16)
    stored = fit(study, features, tmp_path / "stored")
    maps = ModelMaps(study / "stimuli.h5", "atto", spec, batch_size=7, max_bytes=max_bytes)
    live = fit(study, maps, tmp_path / "live")
    n_layers = len(maps.maps)
    assert maps.passes == (n_layers if max_bytes == 1 else 1) and n_layers >= 4
    for key in stored:
        np.testing.assert_array_equal(live[key].best_set, stored[key].best_set)
        np.testing.assert_array_equal(live[key].best_alpha, stored[key].best_alpha)
        scale = np.abs(stored[key].test_pred).max()
        np.testing.assert_allclose(live[key].test_pred, stored[key].test_pred, atol=1e-5 * scale)


VIT = {
    "timm": "vit_tiny_patch16_224",
    "kwargs": {"img_size": 32, "patch_size": 8, "depth": 3, "embed_dim": 24, "num_heads": 2},
    "weights": "random",
    "seed": 0,
    "input_size": 32,
}


@pytest.mark.parametrize("max_bytes", [1, 2**30], ids=["a group per layer", "one group"])
def test_prefix_tokens_kept_from_the_model_equal_the_features_files(study, tmp_path, max_bytes):
    """features.prefix_tokens keep with store none: each block's class token is a set of its
    own, chosen as from the features file."""
    features = tmp_path / "features.h5"
    extract_features(study / "stimuli.h5", features, "vit", VIT, prefix_tokens="keep")
    stored = fit(study, features, tmp_path / "stored")
    maps = ModelMaps(study / "stimuli.h5", "vit", VIT, prefix_tokens="keep", max_bytes=max_bytes)
    names = [fs.name for fs in maps.fit_sets(FIT["pool_sizes"])]
    assert names[:4] == ["block00/k0", "block00/k1", "block00/k2", "block00/k4"]  # k0: prefix
    live = fit(study, maps, tmp_path / "live")
    assert maps.passes == (3 if max_bytes == 1 else 1)
    chose_prefix = False
    for key in stored:
        np.testing.assert_array_equal(live[key].best_set, stored[key].best_set)
        np.testing.assert_array_equal(live[key].best_alpha, stored[key].best_alpha)
        scale = np.abs(stored[key].test_pred).max()
        np.testing.assert_allclose(live[key].test_pred, stored[key].test_pred, atol=1e-5 * scale)
        chose_prefix |= bool(np.isin(live[key].best_set, [0, 4, 8]).any())
    assert chose_prefix  # some voxels take a class token's set


def test_layer_groups_fill_the_budget_in_depth_order():
    # bytes of four layers' maps: a group holds at most 2000, a larger layer is alone
    assert layer_groups([1280, 640, 1280, 2560], 2000) == [[0, 1], [2], [3]]
    assert layer_groups([1280, 640, 1280, 2560], 10**9) == [[0, 1, 2, 3]]
    assert layer_groups([5, 5], 1) == [[0], [1]]


KILLED = """
import os, signal, sys
from pathlib import Path
import numpy as np
from encscale.encoding import subject
from encscale.vision.live import ModelMaps

spec, draws, base, out = {spec!r}, {draws!r}, Path(sys.argv[1]), Path(sys.argv[2])
save, saved = subject._save_resume, []

def save_then_die(*args):
    save(*args)
    saved.append(1)
    if len(saved) == 2:  # after the second group of layers: killed outright
        os.kill(os.getpid(), signal.SIGKILL)

subject._save_resume = save_then_die
maps = ModelMaps(base / "stimuli.h5", "atto", spec, batch_size=7, max_bytes=1)
paths = {{(n, s): out / f"n{{n}}_s{{s}}.h5" for n, s in draws}}
subject.fit_subject_model(
    base / "subj01.h5", maps, paths, n_folds=5, alphas=np.logspace(-2, 6, 9), pool_sizes=[1, 2, 4]
)
"""


def test_a_killed_job_resumes_at_its_next_layer_group_and_ends_equal(study, tmp_path):
    import signal
    import subprocess
    import sys

    out = tmp_path / "killed"
    out.mkdir()
    script = KILLED.format(spec=SPEC, draws=DRAWS)
    run = subprocess.run(
        [sys.executable, "-c", script, str(study), str(out)], capture_output=True, text=True
    )
    assert run.returncode == -signal.SIGKILL, run.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == [".resume.npz"]  # no fit file yet
    said = []
    maps = ModelMaps(study / "stimuli.h5", "atto", SPEC, batch_size=7, max_bytes=1)
    paths = {(n, s): out / f"n{n}_s{s}.h5" for n, s in DRAWS}
    fit_subject_model(study / "subj01.h5", maps, paths, **FIT, progress=said.append)
    n_groups = len(maps.groups(1))
    assert any("resuming at set" in line for line in said)
    assert maps.passes == n_groups - 2  # the two groups done before the kill are not rerun
    assert not (out / ".resume.npz").exists()
    whole_maps = ModelMaps(study / "stimuli.h5", "atto", SPEC, batch_size=7, max_bytes=1)
    whole = fit(study, whole_maps, tmp_path / "w")
    for key, path in paths.items():
        got = read_fit(path, PARTS)
        for part in PARTS:
            np.testing.assert_array_equal(getattr(got, part), getattr(whole[key], part))
