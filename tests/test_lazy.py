"""The subpackages' lazy re-exports: every exported name resolves to the object of its module,
and importing a subpackage imports none of its heavy modules."""

import importlib
import subprocess
import sys

import pytest

SUBPACKAGES = ("data", "vision", "video", "encoding", "scaling", "figures", "simulate")


@pytest.mark.parametrize("name", SUBPACKAGES)
def test_every_export_resolves_to_its_modules_object(name):
    package = importlib.import_module(f"encscale.{name}")
    assert package.__all__ == sorted(set(package.__all__)) and package.__all__
    for export in package.__all__:
        obj = getattr(package, export)
        module = getattr(obj, "__module__", None) or obj.__name__
        assert module.startswith(f"encscale.{name}."), (export, module)
    with pytest.raises(AttributeError, match=f"'encscale.{name}' has no attribute 'nothing'"):
        package.nothing  # noqa: B018


def test_importing_a_subpackage_imports_no_heavy_module():
    code = (
        "import sys, encscale.video, encscale.vision, encscale.encoding, encscale.figures\n"
        "from encscale.video.grid import run_grid\n"
        "print(sorted(m for m in ('torch', 'av', 'timm', 'matplotlib') if m in sys.modules))\n"
        "encscale.video.train_gpt\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[:2] == ["[]", "True"]
