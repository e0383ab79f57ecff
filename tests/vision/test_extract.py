"""Feature extraction into the features file: its sets and values (timm CNNs and
transformers, plugins), float16 storage, refusals, and resuming after SIGKILL."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from tiny_models import CONVNEXT, EVA, PLUGIN

from conftest import write_stimuli
from encscale.contracts import feature_sets
from encscale.torchtools import count_parameters
from encscale.vision.extract import extract_features
from encscale.vision.layers import LayerExtractor, block_maps, maxpool_tokens, preprocess
from encscale.vision.registry import build_model, input_spec

HERE = Path(__file__).resolve().parent


@pytest.fixture
def stimuli(tmp_path):
    return write_stimuli(tmp_path / "stimuli.h5", 11, 48)


def read_all(path) -> dict[str, np.ndarray]:
    out = {}

    def keep(key, obj) -> None:
        if isinstance(obj, h5py.Dataset):
            out[key] = obj[()]

    with h5py.File(path) as h5:
        h5.visititems(keep)
    return out


def direct_maps(spec, stimuli) -> list:
    """Every chosen layer's (map, prefix) for all images at once, straight from the model."""
    model = build_model(spec)
    extractor = LayerExtractor(model, spec, keep_prefix=True)
    with h5py.File(stimuli) as f:
        x = preprocess(f["images"][()], input_spec(model, spec), "cpu")
    with torch.inference_mode():
        return extractor(x)


def window_max(fmap: torch.Tensor, k: int) -> np.ndarray:
    """Max over the k×k equal windows of a (B, C, H, W) map, H and W divisible by k."""
    b, c, h, w = fmap.shape
    return fmap.reshape(b, c, k, h // k, k, w // k).amax(dim=(3, 5)).flatten(1).numpy()


def test_extract_features_layout_and_values(tmp_path):
    stimuli = write_stimuli(tmp_path / "stimuli.h5", 13, 40)
    out = tmp_path / "features.h5"
    lines = []
    extract_features(stimuli, out, "tiny", CONVNEXT, [1, 2, 8], batch_size=5, progress=lines.append)
    assert lines[-1].startswith("tiny: 13/13 images")
    sets = feature_sets(out)
    # four stages of maps 8, 4, 2, 1 pixels wide (input 32): k capped at the map side
    assert [(s.layer, s.k) for s in sets] == [
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
    assert [s.width for s in sets][:3] == [8, 32, 512]
    assert [s.map_size for s in sets][::3] == [8, 4, 2]
    assert sets[0].depth == 0.0 and sets[-1].depth == 1.0
    with h5py.File(out) as h5:
        assert h5.attrs["n_params"] == count_parameters(build_model(CONVNEXT))
        assert h5.attrs["weights"] == "random initialisation, seed 3"
        assert h5.attrs["precision"] == "fp32"
        x = h5["layers/block00/k2"][()]
    # the same numbers computed directly from the model, batch of all 13 images at once
    model = build_model(CONVNEXT)
    with h5py.File(stimuli) as f:
        xin = preprocess(f["images"][()], input_spec(model, CONVNEXT), "cpu")
    with torch.inference_mode():
        ref = maxpool_tokens(block_maps(model, xin)[0], 2).numpy()
    np.testing.assert_allclose(x, ref, rtol=1e-4, atol=1e-5)


def test_extract_features_bad_stimuli_names_the_file(tmp_path):
    bad = tmp_path / "stimuli.h5"
    with h5py.File(bad, "w") as f:
        f["images"] = np.zeros((4, 8, 8), dtype=np.uint8)
    out = tmp_path / "features.h5"
    with pytest.raises(ValueError, match="stimuli.h5.*expected uint8"):
        extract_features(bad, out, "tiny", CONVNEXT, [1])
    assert not out.exists() and not list(tmp_path.glob(".features.h5*"))
    trunc = tmp_path / "trunc.h5"
    trunc.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 10)
    with pytest.raises(OSError, match="trunc.h5"):
        extract_features(trunc, out, "tiny", CONVNEXT, [1])


@pytest.mark.parametrize("prefix_tokens", ["drop", "keep"])
def test_eva02_layers_pooling_and_class_token(stimuli, tmp_path, prefix_tokens):
    out = tmp_path / "eva.h5"
    extract_features(stimuli, out, "eva", EVA, [1, 2, 4], batch_size=4, prefix_tokens=prefix_tokens)
    sets = feature_sets(out)
    layers = sorted({s.layer for s in sets})
    assert layers == ["block00", "block01", "block02"]
    ks = [s.k for s in sets if s.layer == "block01"]
    assert ks == ([0, 1, 2, 4] if prefix_tokens == "keep" else [1, 2, 4])
    feats = read_all(out)
    assert feats["layers/block02/k4"].shape == (11, 48 * 16)
    maps = direct_maps(EVA, stimuli)
    for i, (fmap, prefix) in enumerate(maps):
        assert fmap.shape == (11, 48, 4, 4) and prefix.shape == (11, 1, 48)
        for k in (1, 2, 4):
            np.testing.assert_allclose(
                feats[f"layers/block{i:02d}/k{k}"], window_max(fmap, k), rtol=1e-4, atol=1e-5
            )
        if prefix_tokens == "keep":
            np.testing.assert_allclose(
                feats[f"layers/block{i:02d}/prefix"], prefix.flatten(1), rtol=1e-4, atol=1e-5
            )
    with h5py.File(out) as h5:
        assert h5.attrs["prefix_tokens"] == prefix_tokens
        assert h5.attrs["source"] == "eva02_tiny_patch14_224"


def test_plugin_route_hooks_tokens_and_removes_hooks(stimuli, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))
    out = tmp_path / "plugin.h5"
    extract_features(stimuli, out, "tiny", PLUGIN, [1, 2], batch_size=5, prefix_tokens="keep")
    feats = read_all(out)
    assert sorted(feats) == [
        "layers/mixer/k1", "layers/mixer/k2", "layers/mixer/prefix",
        "layers/stem/k1", "layers/stem/k2",
    ]  # fmt: skip
    (stem, no_prefix), (mixer, cls) = direct_maps(PLUGIN, stimuli)
    assert no_prefix is None and stem.shape == (11, 8, 4, 4) and mixer.shape == (11, 8, 4, 4)
    np.testing.assert_allclose(feats["layers/stem/k2"], window_max(stem, 2), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(feats["layers/mixer/k1"], window_max(mixer, 1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(feats["layers/mixer/prefix"], cls.flatten(1), rtol=1e-5, atol=1e-6)
    model = build_model(PLUGIN)
    extractor = LayerExtractor(model, PLUGIN, keep_prefix=False)
    assert len(model.stem._forward_hooks) == 1
    extractor.close()
    assert all(len(m._forward_hooks) == 0 for m in model.modules())
    with pytest.raises(KeyError, match="no submodule named \\['nope'\\]"):
        LayerExtractor(model, dict(PLUGIN, layers=["stem", "nope"]), keep_prefix=False)


def test_float16_storage_and_layer_choice(stimuli, tmp_path):
    spec = dict(CONVNEXT, layers=[1, -1])
    out16, out32 = tmp_path / "f16.h5", tmp_path / "f32.h5"
    extract_features(stimuli, out16, "c", spec, [2], storage="float16")
    extract_features(stimuli, out32, "c", spec, [2])
    a, b = read_all(out16), read_all(out32)
    assert sorted(a) == ["layers/block01/k2", "layers/block03/k1"]
    assert a["layers/block01/k2"].dtype == np.float16
    np.testing.assert_allclose(a["layers/block01/k2"], b["layers/block01/k2"], rtol=1e-3, atol=1e-3)
    assert [s.depth for s in feature_sets(out32)] == [1 / 3, 1.0]


def test_refuses_when_the_disk_is_too_small(stimuli, tmp_path, monkeypatch):
    import shutil

    monkeypatch.setattr(shutil, "disk_usage", lambda _: shutil._ntuple_diskusage(1, 1, 100))
    out = tmp_path / "big.h5"
    with pytest.raises(OSError, match="big.h5: the features need .* GB but .* GB free"):
        extract_features(stimuli, out, "c", CONVNEXT, [1, 2, 4, 8])
    assert list(tmp_path.iterdir()) == [stimuli]


def test_resumes_after_sigkill_with_identical_output(tmp_path):
    stimuli = write_stimuli(tmp_path / "stimuli.h5", 60, 32, seed=5)
    spec = dict(PLUGIN, factory_kwargs={"delay": 0.1})
    args = dict(batch_size=4, prefix_tokens="keep", num_workers=1)
    out = tmp_path / "killed.h5"
    code = (
        "import json, sys; from encscale.vision.extract import extract_features; "
        f"extract_features({str(stimuli)!r}, {str(out)!r}, 'tiny', json.loads(sys.argv[1]), "
        f"[1, 2], **{args!r})"
    )
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(HERE), str(HERE.parent), os.environ.get("PYTHONPATH", "")]),
    )
    proc = subprocess.Popen([sys.executable, "-c", code, json.dumps(spec)], env=env)
    state = out.with_name(out.name + ".progress.json")
    deadline = time.time() + 60
    while time.time() < deadline:
        if state.exists() and json.loads(state.read_text())["done"] >= 16:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = json.loads(state.read_text())["done"]
    assert 16 <= done < 60 and not out.exists()
    lines = []
    sys.path.insert(0, str(HERE))
    try:
        extract_features(stimuli, out, "tiny", spec, [1, 2], progress=lines.append, **args)
        fresh = tmp_path / "fresh.h5"
        extract_features(stimuli, fresh, "tiny", spec, [1, 2], **args)
    finally:
        sys.path.remove(str(HERE))
    assert lines[0].startswith(f"tiny: resuming at image {done}/60")
    assert not state.exists() and not out.with_name(out.name + ".partial").exists()
    a, b = read_all(out), read_all(fresh)
    assert sorted(a) == sorted(b)
    for key in a:
        assert np.array_equal(a[key], b[key]), key
