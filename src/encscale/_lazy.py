"""Lazy re-exports for the stage subpackages (PEP 562).

``encscale.video.train_gpt`` imports ``encscale.video.gpt`` on first use, so code that needs
one light module of a subpackage (the workflow, when it plans a study) never pays for the
heavy ones (torch, PyAV).

:func:`optional_import` imports a module of one of the package's optional extras (the movie
study's ``video``: transformers, PyAV, DataLad), saying how to install the extra when it is
missing.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import Any


def attach(
    package: str, exports: Mapping[str, Sequence[str]]
) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """``__getattr__``, ``__dir__`` and ``__all__`` of ``package``.

    ``exports`` maps each submodule to the names the package re-exports from it; the
    submodules themselves are reachable as attributes too.
    """
    owner = {name: module for module, names in exports.items() for name in names}
    public = sorted({*exports, *owner})

    def __getattr__(name: str) -> Any:
        if name in owner:
            return getattr(importlib.import_module(f"{package}.{owner[name]}"), name)
        if name in exports:
            return importlib.import_module(f"{package}.{name}")
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return public

    return __getattr__, __dir__, public


def optional_import(module: str, extra: str) -> ModuleType:
    """Import ``module``, which encscale's optional ``extra`` installs; when it is missing, a
    ModuleNotFoundError (an ImportError) that says ``pip install "encscale[<extra>]"``."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        top = module.partition(".")[0]
        if err.name is None or err.name.partition(".")[0] != top:
            raise  # something the module itself imports is missing: not the extra's fault
        raise ModuleNotFoundError(
            f"{top} is not installed: it comes with encscale's optional '{extra}' "
            f'dependencies, pip install "encscale[{extra}]"',
            name=err.name,
        ) from err
