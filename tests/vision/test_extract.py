"""Feature extraction into the features file: its layer maps and prefix sets and their
values (timm CNNs and transformers, plugins), grids pooled from the stored maps equal to
those pooled before storing, float16 storage, refusals, and resuming after SIGKILL."""

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
from encscale.contracts import LayerMap, feature_sets, open_features
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


def batch_maps(spec, stimuli, batch_size: int) -> list[torch.Tensor]:
    """Every block's (N, C, h, w) map straight from a timm model (``forward_intermediates``,
    no hooks), in batches of ``batch_size`` images as the extraction runs them."""
    model = build_model(spec)
    ispec = input_spec(model, spec)
    with h5py.File(stimuli) as f:
        images = f["images"][()]
    with torch.inference_mode():
        per_batch = [
            block_maps(model, preprocess(images[lo : lo + batch_size], ispec, "cpu"))
            for lo in range(0, len(images), batch_size)
        ]
    return [torch.cat(maps) for maps in zip(*per_batch, strict=True)]


def test_extract_features_layout_and_values(tmp_path):
    stimuli = write_stimuli(tmp_path / "stimuli.h5", 13, 40)
    out = tmp_path / "features.h5"
    lines = []
    extract_features(stimuli, out, "tiny", CONVNEXT, batch_size=5, progress=lines.append)
    assert lines[-1].startswith("tiny: 13/13 images")
    assert feature_sets(out) == []  # no prefix tokens: only maps
    with open_features(out) as features:
        # four stages of maps 8, 4, 2, 1 pixels wide (input 32), 8 … 32 channels
        assert features.maps == [
            LayerMap(f"block{i:02d}", i / 3, i, c, side, side)
            for i, (c, side) in enumerate([(8, 8), (16, 4), (24, 2), (32, 1)])
        ]
        assert features.n_stimuli == 13
        stored = [features.read_map(lm, np.arange(13)) for lm in features.maps]
    feats = read_all(out)
    assert sorted(feats) == [f"layers/block{i:02d}/map" for i in range(4)]
    with h5py.File(out) as h5:
        assert h5.attrs["n_params"] == count_parameters(build_model(CONVNEXT))
        assert h5.attrs["weights"] == "random initialisation, seed 3"
        assert h5.attrs["precision"] == "fp32"
        assert "pool_sizes" not in h5.attrs
        dset = h5["layers/block01/map"]
        assert dset.dtype == np.float32 and dset.chunks is None
        assert dict(dset.attrs) == dict(layer_index=1, depth=1 / 3, map_size=4)
    # the same numbers computed directly from the model, in the same batches
    for x, ref in zip(stored, batch_maps(CONVNEXT, stimuli, 5), strict=True):
        assert x.dtype == np.float32
        assert np.array_equal(x, ref.numpy())


@pytest.mark.parametrize("storage", ["float32", "float16"])
@pytest.mark.parametrize(("spec", "sides"), [(CONVNEXT, [8, 4, 2, 1]), (EVA, [4, 4, 4])])
def test_grids_pooled_from_the_stored_maps_equal_those_pooled_before(
    stimuli, tmp_path, storage, spec, sides
):
    """What a fit pools from a stored map (float32, any k up to the side, dividing it or
    not) is bitwise what pooling the model's map before storing it gave."""
    out = tmp_path / "features.h5"
    extract_features(stimuli, out, "m", spec, batch_size=4, storage=storage)
    rows = np.array([10, 3, 3, 0, 7])
    with open_features(out) as features:
        assert [lm.side for lm in features.maps] == sides
        stored = [features.read_map(lm, rows) for lm in features.maps]
    for fmap, x, side in zip(batch_maps(spec, stimuli, 4), stored, sides, strict=True):
        for k in range(1, side + 1):
            before = maxpool_tokens(fmap, k).numpy().astype(storage).astype(np.float32)[rows]
            after = maxpool_tokens(torch.from_numpy(x), k).numpy()
            assert after.dtype == np.float32 and after.shape == (5, fmap.shape[1] * k * k)
            assert np.array_equal(after, before), (side, k)


def test_extract_features_bad_stimuli_names_the_file(tmp_path):
    bad = tmp_path / "stimuli.h5"
    with h5py.File(bad, "w") as f:
        f["images"] = np.zeros((4, 8, 8), dtype=np.uint8)
    out = tmp_path / "features.h5"
    with pytest.raises(ValueError, match="stimuli.h5.*expected uint8"):
        extract_features(bad, out, "tiny", CONVNEXT)
    assert not out.exists() and not list(tmp_path.glob(".features.h5*"))
    trunc = tmp_path / "trunc.h5"
    trunc.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 10)
    with pytest.raises(OSError, match="trunc.h5"):
        extract_features(trunc, out, "tiny", CONVNEXT)


@pytest.mark.parametrize("prefix_tokens", ["drop", "keep"])
def test_eva02_layer_maps_and_class_token(stimuli, tmp_path, prefix_tokens):
    out = tmp_path / "eva.h5"
    extract_features(stimuli, out, "eva", EVA, batch_size=4, prefix_tokens=prefix_tokens)
    sets = feature_sets(out)
    assert [(s.layer, s.k) for s in sets] == (
        [(f"block{i:02d}", 0) for i in range(3)] if prefix_tokens == "keep" else []
    )
    with open_features(out) as features:
        assert [lm.layer for lm in features.maps] == ["block00", "block01", "block02"]
        fit = [(s.layer, s.k, s.from_map) for s in features.fit_sets([1, 2, 4])]
    cls_set = [("block01", 0, False)] if prefix_tokens == "keep" else []
    pooled = [("block01", k, True) for k in (1, 2, 4)]
    assert [s for s in fit if s[0] == "block01"] == cls_set + pooled
    feats = read_all(out)
    assert feats["layers/block02/map"].shape == (11, 48, 4, 4)
    maps = direct_maps(EVA, stimuli)
    for i, (fmap, prefix) in enumerate(maps):
        assert fmap.shape == (11, 48, 4, 4) and prefix.shape == (11, 1, 48)
        stored = torch.from_numpy(feats[f"layers/block{i:02d}/map"])
        np.testing.assert_allclose(stored, fmap, rtol=1e-4, atol=1e-5)
        for k in (1, 2, 4):
            np.testing.assert_allclose(
                maxpool_tokens(stored, k), window_max(fmap, k), rtol=1e-4, atol=1e-5
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
    extract_features(stimuli, out, "tiny", PLUGIN, batch_size=5, prefix_tokens="keep")
    feats = read_all(out)
    assert sorted(feats) == ["layers/mixer/map", "layers/mixer/prefix", "layers/stem/map"]
    (stem, no_prefix), (mixer, cls) = direct_maps(PLUGIN, stimuli)
    assert no_prefix is None and stem.shape == (11, 8, 4, 4) and mixer.shape == (11, 8, 4, 4)
    np.testing.assert_allclose(feats["layers/stem/map"], stem, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(feats["layers/mixer/map"], mixer, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(feats["layers/mixer/prefix"], cls.flatten(1), rtol=1e-5, atol=1e-6)
    model = build_model(PLUGIN)
    extractor = LayerExtractor(model, PLUGIN, keep_prefix=False)
    assert len(model.stem._forward_hooks) == 1
    extractor.close()
    assert all(len(m._forward_hooks) == 0 for m in model.modules())
    with pytest.raises(KeyError, match="no submodule named \\['nope'\\]"):
        LayerExtractor(model, dict(PLUGIN, layers=["stem", "nope"]), keep_prefix=False)


def test_entry_n_params_overrides_the_count_and_both_are_recorded(stimuli, tmp_path, monkeypatch):
    """A plugin wrapper counts every modality's parameters; the entry's n_params (what a
    study reports) is the one the laws use, the counted one is kept beside it."""
    monkeypatch.syspath_prepend(str(HERE))
    counted = count_parameters(build_model(PLUGIN))
    out = tmp_path / "plugin.h5"
    extract_features(stimuli, out, "tiny", dict(PLUGIN, n_params=123), batch_size=5)
    with h5py.File(out) as h5:
        assert h5.attrs["n_params"] == 123 and h5.attrs["n_params_counted"] == counted
    with open_features(out) as features:
        assert features.n_params == 123
    plain = tmp_path / "plain.h5"
    extract_features(stimuli, plain, "tiny", PLUGIN, batch_size=5)
    with h5py.File(plain) as h5:
        assert h5.attrs["n_params"] == h5.attrs["n_params_counted"] == counted != 123


def test_unnormalised_pixels_as_the_first_study_fed_its_models(stimuli, tmp_path):
    """pixel_norm="none" feeds [0, 1] pixels: the same maps as an entry whose mean is 0 and
    std 1, and other maps than the model's own normalisation; the file records which."""
    unit = dict(CONVNEXT, mean=[0.0, 0.0, 0.0], std=[1.0, 1.0, 1.0])
    paths = {key: tmp_path / f"{key}.h5" for key in ("none", "unit", "model")}
    extract_features(stimuli, paths["none"], "c", CONVNEXT, pixel_norm="none")
    extract_features(stimuli, paths["unit"], "c", unit)
    extract_features(stimuli, paths["model"], "c", CONVNEXT)
    maps = {key: read_all(path)["layers/block03/map"] for key, path in paths.items()}
    assert np.array_equal(maps["none"], maps["unit"])
    assert not np.allclose(maps["none"], maps["model"])
    with h5py.File(paths["none"]) as h5:
        assert list(h5.attrs["mean"]) == [0, 0, 0] and list(h5.attrs["std"]) == [1, 1, 1]
    with h5py.File(paths["model"]) as h5:
        assert list(h5.attrs["std"]) != [1, 1, 1]
    with pytest.raises(ValueError, match="pixel_norm must be one of"):
        extract_features(stimuli, tmp_path / "x.h5", "c", CONVNEXT, pixel_norm="clip")


def test_float16_storage_and_layer_choice(stimuli, tmp_path):
    spec = dict(CONVNEXT, layers=[1, -1])
    out16, out32 = tmp_path / "f16.h5", tmp_path / "f32.h5"
    extract_features(stimuli, out16, "c", spec, storage="float16")
    extract_features(stimuli, out32, "c", spec)
    a, b = read_all(out16), read_all(out32)
    assert sorted(a) == ["layers/block01/map", "layers/block03/map"]
    assert a["layers/block01/map"].dtype == np.float16
    assert np.array_equal(a["layers/block01/map"], b["layers/block01/map"].astype(np.float16))
    with open_features(out32) as features:
        assert [(lm.depth, lm.layer_index, lm.side) for lm in features.maps] == [
            (1 / 3, 1, 4),
            (1.0, 3, 1),
        ]


def test_refuses_when_the_disk_is_too_small(stimuli, tmp_path, monkeypatch):
    import shutil

    monkeypatch.setattr(shutil, "disk_usage", lambda _: shutil._ntuple_diskusage(1, 1, 100))
    out = tmp_path / "big.h5"
    with pytest.raises(OSError, match="big.h5: the features need .* GB but .* GB free"):
        extract_features(stimuli, out, "c", CONVNEXT)
    assert list(tmp_path.iterdir()) == [stimuli]


def test_resumes_after_sigkill_with_identical_output(tmp_path):
    stimuli = write_stimuli(tmp_path / "stimuli.h5", 60, 32, seed=5)
    spec = dict(PLUGIN, factory_kwargs={"delay": 0.1})
    args = dict(batch_size=4, prefix_tokens="keep", num_workers=1)
    out = tmp_path / "killed.h5"
    code = (
        "import json, sys; from encscale.vision.extract import extract_features; "
        f"extract_features({str(stimuli)!r}, {str(out)!r}, 'tiny', json.loads(sys.argv[1]), "
        f"**{args!r})"
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
        extract_features(stimuli, out, "tiny", spec, progress=lines.append, **args)
        fresh = tmp_path / "fresh.h5"
        extract_features(stimuli, fresh, "tiny", spec, **args)
    finally:
        sys.path.remove(str(HERE))
    assert lines[0].startswith(f"tiny: resuming at image {done}/60")
    assert not state.exists() and not out.with_name(out.name + ".partial").exists()
    a, b = read_all(out), read_all(fresh)
    assert sorted(a) == sorted(b)
    for key in a:
        assert np.array_equal(a[key], b[key]), key
