"""Layer maps computed by the model at fit time (features.store: none) give the fits that
the features file gives, whatever the layer groups the memory budget makes."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import SIM_PARAMS
from encscale.contracts import read_fit
from encscale.data.prepare import prepare_stimuli, prepare_subject
from encscale.encoding.subject import fit_subject_model
from encscale.simulate.nsd import simulate_nsd
from encscale.vision.extract import extract_features
from encscale.vision.live import ModelMaps, layer_groups

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


def test_layer_groups_fill_the_budget_in_depth_order():
    from encscale.contracts import LayerMap

    maps = [
        LayerMap(f"l{i}", i / 4, i, c, s, s)
        for i, (c, s) in enumerate([(2, 4), (4, 2), (8, 2), (1, 8)])
    ]
    # bytes over 10 images of 4 bytes: 1280, 640, 1280, 2560
    groups = layer_groups(maps, 10, 4, 2000)
    assert [[lm.layer for lm in g] for g in groups] == [["l0", "l1"], ["l2"], ["l3"]]
    assert len(layer_groups(maps, 10, 4, 10**9)) == 1
