"""The model registry's routes to weights: seeded random weights, a weights file, the hub."""

import time
from pathlib import Path

import pytest
import torch
from tiny_models import CONVNEXT, EVA, PLUGIN

from encscale.torchtools import count_parameters
from encscale.vision.registry import build_model

HERE = Path(__file__).resolve().parent


def test_random_weights_are_seeded_and_counted():
    a, b = build_model(CONVNEXT), build_model(CONVNEXT)
    other = build_model(dict(CONVNEXT, seed=4))
    pa, pb, po = (next(iter(m.parameters())) for m in (a, b, other))
    assert torch.equal(pa, pb) and not torch.equal(pa, po)
    assert count_parameters(a) == sum(p.numel() for p in a.parameters()) > 1000


def test_weights_file_loads_identical_outputs(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))
    x = torch.randn(2, 3, 32, 32)
    for spec, suffix in ((CONVNEXT, ".safetensors"), (EVA, ".pth"), (PLUGIN, ".pt")):
        source = build_model(spec)
        path = tmp_path / f"weights{suffix}"
        if suffix == ".safetensors":
            from safetensors.torch import save_file

            save_file(source.state_dict(), str(path))
        else:
            torch.save(source.state_dict(), path)
        loaded = build_model(dict(spec, weights="file", weights_file=str(path), seed=99))
        size = 56 if spec is EVA else 32
        xin = torch.nn.functional.interpolate(x, size=size)
        with torch.inference_mode():
            assert torch.equal(source(xin), loaded(xin))


def test_missing_weights_fail_fast_and_clearly(tmp_path, monkeypatch):
    missing = tmp_path / "nowhere.safetensors"
    with pytest.raises(FileNotFoundError, match=f"model 'zoo_a'.*{missing}"):
        build_model(dict(CONVNEXT, weights="file", weights_file=str(missing)), "zoo_a")
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    start = time.perf_counter()
    with pytest.raises(RuntimeError, match="model 'zoo_b'.*Hugging Face cache .*hub.*offline"):
        build_model({"timm": "convnext_atto.d2_in1k", "weights": "hub"}, "zoo_b", offline=True)
    assert time.perf_counter() - start < 10
