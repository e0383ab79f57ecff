"""Import shims for broken binary combinations, applied only when the failure happens.

The registry's torchvision wheel is a CUDA build. Next to a CPU-only torch its compiled
ops do not load, and ``torchvision/_meta_registrations.py`` then raises
``RuntimeError: operator torchvision::nms does not exist`` on import, which breaks
``import timm`` and transformers' models (they import torchvision's transforms).
Defining the schemas of the two ops it registers meta kernels for
(``nms`` and ``qnms``) lets the pure-Python parts of torchvision import; the ops
themselves stay unavailable (timm's models and GPT-2 do not use them).
"""

from __future__ import annotations

import sys

_SCHEMAS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}
_library = None  # keeps the torch.library fragment alive for the process


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
    import torch

    _library = torch.library.Library("torchvision", "DEF")
    for schema in _SCHEMAS.values():
        _library.define(schema)
