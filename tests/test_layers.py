"""The import-linter contract of the architecture: stages import only downwards.

The real package keeps it; a copy of the package with one forbidden import written into it
breaks it, and the report names the contract and the import.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import encscale

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(encscale.__file__).resolve().parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
CONTRACT = "Stages over the base, each importing only downwards"


def lint_imports(cwd: Path, src: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` on the package found in ``src``, with ``cwd``'s pyproject.toml."""
    env = dict(os.environ, PYTHONPATH=str(src))
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_package_keeps_its_layers():
    result = lint_imports(ROOT, PACKAGE.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{CONTRACT} KEPT" in result.stdout
    assert "Contracts: 1 kept, 0 broken." in result.stdout


@pytest.fixture
def package_copy(tmp_path):
    """A copy of the package and of the contract's configuration under ``tmp_path``."""
    shutil.copytree(
        PACKAGE, tmp_path / "src" / "encscale", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _append_import(package_root: Path, module: str, statement: str) -> int:
    """Append ``statement`` to ``module``'s file in the copy; return its line number."""
    path = package_root / "src" / Path(*module.split(".")).with_suffix(".py")
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines, statement, ""]))
    return len(lines) + 1


@pytest.mark.parametrize(
    ("importer", "imported", "broken"),
    [
        # a stage importing a stage above it
        ("encscale.data.nsd", "encscale.encoding.fit", "encscale.data is not allowed to import"),
        # the two studies' model packages are independent siblings
        ("encscale.video.gpt", "encscale.vision.registry", "encscale.video is not allowed to"),
        # a base module importing a stage
        ("encscale.io", "encscale.data.nsd", "encscale.io is not allowed to import encscale.data"),
        # the base's own order
        ("encscale.provenance", "encscale.io", "encscale.provenance is not allowed to import"),
    ],
)
def test_a_forbidden_import_breaks_the_contract(package_copy, importer, imported, broken):
    line = _append_import(package_copy, importer, f"import {imported}  # noqa")
    result = lint_imports(package_copy, package_copy / "src")
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{CONTRACT} BROKEN" in result.stdout
    assert broken in result.stdout
    assert f"{importer} -> {imported} (l.{line})" in result.stdout


def test_a_module_outside_the_layers_breaks_the_contract(package_copy):
    (package_copy / "src" / "encscale" / "helpers.py").write_text('"""Unplaced."""\n')
    result = lint_imports(package_copy, package_copy / "src")
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{CONTRACT} BROKEN" in result.stdout
    assert "The following modules are not listed as layers:\n\n- encscale.helpers" in result.stdout
