"""Torch helpers shared by the stages: precisions, autocast, sizes, peak memory, imports.

Import shims for a broken binary combination (:func:`import_torchvision`,
:func:`import_timm`), applied only when the failure happens: the registry's torchvision
wheel is a CUDA build. Next to a CPU-only torch its compiled ops do not load, and
``torchvision/_meta_registrations.py`` then raises
``RuntimeError: operator torchvision::nms does not exist`` on import, which breaks
``import timm`` and transformers' models (they import torchvision's transforms).
Defining the schemas of the two ops it registers meta kernels for
(``nms`` and ``qnms``) lets the pure-Python parts of torchvision import; the ops
themselves stay unavailable (timm's models and GPT-2 do not use them).
"""

from __future__ import annotations

import resource
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

import torch

# Compute dtypes by precision name: fp32 runs in full float32 (TF32 off), tf32 in float32
# with TF32 matrix products and convolutions on NVIDIA GPUs (the same as fp32 elsewhere),
# bf16 and fp16 under autocast.
PRECISIONS = {
    "fp32": torch.float32,
    "tf32": torch.float32,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}

_SCHEMAS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}
_library = None  # keeps the torch.library fragment alive for the process


def autocast(device: str | torch.device, precision: str) -> AbstractContextManager:
    """The context of ``precision`` (a key of :data:`PRECISIONS`) on ``device``: TF32 off
    for fp32 and on for tf32 (CUDA's matrix products and cuDNN's convolutions, restored
    after the block), else autocast to bfloat16 or float16."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")
    if precision in ("fp32", "tf32"):
        return _tf32(precision == "tf32")
    return torch.autocast(device_type=torch.device(device).type, dtype=PRECISIONS[precision])


@contextmanager
def _tf32(allowed: bool) -> Iterator[None]:
    """TF32 matrix products and convolutions allowed (or not) inside the block."""
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    saved = matmul.allow_tf32, cudnn.allow_tf32
    matmul.allow_tf32 = cudnn.allow_tf32 = allowed
    try:
        yield
    finally:
        matmul.allow_tf32, cudnn.allow_tf32 = saved


def count_parameters(model: torch.nn.Module) -> int:
    """Number of parameters of the model (all tensors, trainable or not)."""
    return sum(p.numel() for p in model.parameters())


def peak_memory_mb(device: str | torch.device) -> float:
    """Peak allocated GPU memory (MiB) on CUDA, else the process's peak resident set (MiB)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10


def import_torchvision():
    """Import and return ``torchvision``, defining its missing op schemas if needed."""
    try:
        import torchvision
    except RuntimeError as err:
        if "torchvision::nms does not exist" not in str(err):
            raise
        _define_torchvision_schemas()
        for name in [m for m in sys.modules if m.startswith(("torchvision", "timm"))]:
            del sys.modules[name]
        import torchvision
    return torchvision


def import_timm():
    """Import and return ``timm`` (after :func:`import_torchvision`)."""
    import_torchvision()
    import timm

    return timm


def _define_torchvision_schemas() -> None:
    global _library
    _library = torch.library.Library("torchvision", "DEF")
    for schema in _SCHEMAS.values():
        _library.define(schema)
