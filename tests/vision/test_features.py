"""Feature extraction: pooling, block maps, the HDF5 layout, and the torchvision shim."""

import h5py
import numpy as np
import pytest
import torch

from conftest import write_stimuli
from encscale.vision.features import extract_features, feature_sets, maxpool_tokens
from encscale.vision.registry import build_model, count_parameters

SPEC = {
    "timm": "convnext_atto",
    "kwargs": {"dims": [8, 16, 24, 32], "depths": [1, 1, 1, 1], "ls_init_value": 1.0},
    "seed": 3,
    "input_size": 32,
}


def test_maxpool_tokens_matches_manual_blocks():
    fmap = torch.randn(2, 3, 8, 8)
    pooled = maxpool_tokens(fmap, 2).reshape(2, 3, 2, 2)
    manual = fmap.reshape(2, 3, 2, 4, 2, 4).amax(dim=(3, 5))
    assert torch.equal(pooled, manual)
    # k above the map side is capped: a 2×2 map pooled "to 8" is the map itself
    small = torch.randn(1, 5, 2, 2)
    assert torch.equal(maxpool_tokens(small, 8), small.flatten(1))
    assert maxpool_tokens(fmap, 1).shape == (2, 3)


def test_import_timm_works_with_this_torchvision():
    from encscale.torchtools import import_timm

    timm = import_timm()
    assert hasattr(timm, "create_model")


def test_random_weights_are_seeded_and_counted():
    a, b = build_model(SPEC), build_model(SPEC)
    other = build_model(dict(SPEC, seed=4))
    pa, pb, po = (next(iter(m.parameters())) for m in (a, b, other))
    assert torch.equal(pa, pb) and not torch.equal(pa, po)
    assert count_parameters(a) == sum(p.numel() for p in a.parameters()) > 1000


@pytest.fixture
def stimuli(tmp_path):
    return write_stimuli(tmp_path / "stimuli.h5", 13, 40)


def test_extract_features_layout_and_values(stimuli, tmp_path):
    out = tmp_path / "features.h5"
    lines = []
    extract_features(stimuli, out, "tiny", SPEC, [1, 2, 8], batch_size=5, progress=lines.append)
    assert lines[-1].startswith("tiny: 13/13 images")
    sets = feature_sets(out)
    # four stages of maps 8, 4, 2, 1 pixels wide (input 32): k capped at the map side
    assert [(s["layer"], s["k"]) for s in sets] == [
        ("block00", 1),
        ("block00", 2),
        ("block00", 8),
        ("block01", 1),
        ("block01", 2),
        ("block01", 4),
        ("block02", 1),
        ("block02", 2),
        ("block03", 1),
    ]
    assert [s["width"] for s in sets][:3] == [8, 32, 512]
    assert sets[0]["depth"] == 0.0 and sets[-1]["depth"] == 1.0
    with h5py.File(out) as h5:
        assert h5.attrs["n_params"] == count_parameters(build_model(SPEC))
        assert h5.attrs["weights"] == "random initialisation, seed 3"
        assert h5.attrs["precision"] == "fp32"
        x = h5["layers/block00/k2"][()]
    # the same numbers computed directly from the model, batch of all 13 images at once
    from encscale.vision.features import block_maps, preprocess
    from encscale.vision.registry import input_spec

    model = build_model(SPEC)
    with h5py.File(stimuli) as f:
        xin = preprocess(f["images"][()], input_spec(model, SPEC), "cpu")
    with torch.inference_mode():
        ref = maxpool_tokens(block_maps(model, xin)[0], 2).numpy()
    np.testing.assert_allclose(x, ref, rtol=1e-4, atol=1e-5)


def test_extract_features_bad_stimuli_names_the_file(tmp_path):
    bad = tmp_path / "stimuli.h5"
    with h5py.File(bad, "w") as f:
        f["images"] = np.zeros((4, 8, 8), dtype=np.uint8)
    out = tmp_path / "features.h5"
    with pytest.raises(ValueError, match="stimuli.h5.*expected uint8"):
        extract_features(bad, out, "tiny", SPEC, [1])
    assert not out.exists() and not list(tmp_path.glob(".features.h5*"))
    trunc = tmp_path / "trunc.h5"
    trunc.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 10)
    with pytest.raises(OSError, match="trunc.h5"):
        extract_features(trunc, out, "tiny", SPEC, [1])
