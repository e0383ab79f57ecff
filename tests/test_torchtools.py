"""The shared torch helpers: precisions, autocast, parameter counts, peak memory, imports."""

import sys

import pytest
import torch

from encscale.jobs import peak_rss_bytes
from encscale.torchtools import (
    PRECISIONS,
    autocast,
    count_parameters,
    import_timm,
    import_torchvision,
    peak_memory_mb,
)


def test_precisions_name_their_compute_dtypes():
    assert PRECISIONS == {
        "fp32": torch.float32,
        "tf32": torch.float32,
        "bf16": torch.bfloat16,
        "fp16": torch.float16,
    }


@pytest.mark.parametrize(
    ("precision", "dtype"),
    [
        ("fp32", torch.float32),
        ("tf32", torch.float32),
        ("bf16", torch.bfloat16),
        ("fp16", torch.float16),
    ],
)
def test_autocast_computes_a_product_in_the_precision(precision, dtype):
    a, b = torch.randn(8, 8), torch.randn(8, 8)
    with autocast("cpu", precision):
        product = a @ b
        enabled = torch.is_autocast_enabled("cpu")
    assert product.dtype == dtype
    assert enabled == (precision not in ("fp32", "tf32"))
    assert not torch.is_autocast_enabled("cpu")


def test_autocast_takes_a_device_object_and_refuses_an_unknown_precision():
    with autocast(torch.device("cpu"), "bf16"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    known = r"\['fp32', 'tf32', 'bf16', 'fp16'\]"
    with pytest.raises(ValueError, match=rf"precision must be one of {known}"):
        autocast("cpu", "fp8")


def test_count_parameters_counts_every_tensor_but_not_buffers():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    model[0].weight.requires_grad_(False)  # frozen weights still count
    # Linear 3·4 + 4, BatchNorm weight and bias 4 + 4; its running statistics are buffers
    assert count_parameters(model) == 12 + 4 + 4 + 4


def _peak_rss_mib() -> float:
    return peak_rss_bytes() / 2**20


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc (Linux)")
def test_peak_memory_on_cpu_is_the_peak_resident_set_in_mib():
    before = _peak_rss_mib()
    block = torch.ones(64 * 2**20 // 4)  # 64 MiB of float32, touched
    peak = peak_memory_mb("cpu")
    after = _peak_rss_mib()
    assert before <= peak <= after
    assert after >= 64 and float(block[-1]) == 1.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_peak_memory_on_cuda_is_the_allocator_peak_in_mib():
    device = torch.device("cuda")
    torch.cuda.reset_peak_memory_stats(device)
    start = torch.cuda.memory_allocated(device) / 2**20
    block = torch.ones(64 * 2**20 // 4, device=device)
    del block
    peak = peak_memory_mb("cuda")
    assert peak == torch.cuda.max_memory_allocated(device) / 2**20
    assert start + 64 <= peak < start + 65


def test_import_torchvision_and_timm_give_working_modules():
    torchvision = import_torchvision()
    assert torchvision.transforms.functional.hflip(torch.arange(3.0).view(1, 1, 3)).tolist() == [
        [[2.0, 1.0, 0.0]]
    ]
    assert hasattr(import_timm(), "create_model")


@pytest.mark.parametrize("before", [False, True])
def test_tf32_is_on_only_for_tf32_and_restored_after(before):
    """fp32 is full float32 whatever the process's setting; tf32 allows TF32 (on NVIDIA
    GPUs: matrix products and cuDNN convolutions); the setting is restored after."""
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    saved = matmul.allow_tf32, cudnn.allow_tf32
    matmul.allow_tf32 = cudnn.allow_tf32 = before
    try:
        for precision, inside in (("fp32", False), ("tf32", True)):
            with autocast("cuda", precision):
                assert matmul.allow_tf32 is inside and cudnn.allow_tf32 is inside
            assert matmul.allow_tf32 is before and cudnn.allow_tf32 is before
    finally:
        matmul.allow_tf32, cudnn.allow_tf32 = saved
