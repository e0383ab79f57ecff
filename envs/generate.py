"""The rules' conda environments, envs/*.yaml, written from the pins of constraints.txt.

    python envs/generate.py           write the files (`make envs`)
    python envs/generate.py --check   write nothing; exit 1 naming the files that differ

Each environment lists the distributions its rules import (through the package), at the
exact versions pip installs the package with (constraints.txt), under their conda-forge
names (:data:`CONDA_NAMES` where they differ from pip's). git-annex is a conda-only package,
pinned here (:data:`CONDA_ONLY`). The standard library only, so any Python runs it.
"""

from __future__ import annotations

import re
import sys
import textwrap
from pathlib import Path

HERE = Path(__file__).resolve().parent
PINS = HERE.parent / "constraints.txt"
PYTHON = "3.11"

# conda-forge names of the distributions whose pip names differ (pip names canonical)
CONDA_NAMES = {"torch": "pytorch", "huggingface-hub": "huggingface_hub"}
# conda-only packages: version and the comment on their line
CONDA_ONLY = {"git-annex": ("10.20250929", "conda-forge linux-64 build (not a PyPI package)")}

# env name → (what its rules do, the distributions they need: pip names, or CONDA_ONLY's)
ENVS: dict[str, tuple[str, list[str]]] = {
    "analysis": (
        "Scores, scaling fits, figures and submissions.",
        ["numpy", "scipy", "h5py", "pandas", "matplotlib", "pyyaml", "nilearn", "nibabel"]
        + ["pillow", "tqdm"],
    ),
    "data": (
        "Simulation, fetching and preparation of both studies' data: NSD-layout data, the "
        "Algonauts 2023 download, the CNeuroMod movies (DataLad).",
        ["numpy", "scipy", "h5py", "pandas", "nibabel", "pillow", "boto3", "torch"]
        + ["torchvision", "timm", "huggingface-hub", "safetensors", "botocore", "urllib3"]
        + ["datalad", "git-annex", "av", "nilearn", "tqdm"],
    ),
    "encoding": (
        "Voxelwise ridge fits (torch on CPU or CUDA).",
        ["numpy", "scipy", "h5py", "pandas", "nibabel", "torch", "torchvision", "timm"]
        + ["huggingface-hub", "safetensors", "tqdm"],
    ),
    "features": (
        "Feature extraction with timm models, and model weights from the Hugging Face hub; "
        "the movie study's tokenizer and GPT-2 runs (transformers, PyAV).",
        ["numpy", "h5py", "pandas", "nibabel", "torch", "torchvision", "timm"]
        + ["huggingface-hub", "safetensors", "transformers", "scipy", "av", "nilearn", "tqdm"],
    ),
}

HEADER = """\
# Generated from constraints.txt by envs/generate.py (`make envs`): change those, not this
# file. The package itself comes from the checkout: see README.
"""


def canonical(name: str) -> str:
    """A distribution's canonical name (PEP 503): lower case, runs of -_. as one -."""
    return re.sub(r"[-_.]+", "-", name).lower()


def conda_name(pip_name: str) -> str:
    """The conda-forge name of the pip distribution ``pip_name``."""
    return CONDA_NAMES.get(canonical(pip_name), canonical(pip_name))


def read_pins(path: Path = PINS) -> dict[str, str]:
    """{canonical name: version} of a constraints file whose every line pins exactly."""
    pins = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([0-9][0-9A-Za-z.]*)", line)
        if not match:
            raise ValueError(f"{path.name}:{number}: '{line}' is not an exact pin (name==version)")
        name = canonical(match.group(1))
        if name in pins:
            raise ValueError(f"{path.name}:{number}: {name} is pinned twice")
        pins[name] = match.group(2)
    return pins


def render(pins: dict[str, str] | None = None) -> dict[str, str]:
    """{file name: text} of every environment."""
    pins = read_pins() if pins is None else pins
    files = {}
    for env, (purpose, packages) in ENVS.items():
        lines = textwrap.wrap(purpose, 92, initial_indent="# ", subsequent_indent="# ")
        lines += [HEADER.rstrip("\n"), "channels:", "  - conda-forge"]
        lines += ["  - nodefaults", "dependencies:", f"  - python={PYTHON}"]
        for package in packages:
            if package in CONDA_ONLY:
                version, comment = CONDA_ONLY[package]
                lines.append(f"  - {package}={version}   # {comment}")
            elif canonical(package) in pins:
                lines.append(f"  - {conda_name(package)}={pins[canonical(package)]}")
            else:
                raise KeyError(f"{env}: {package} is not pinned in {PINS.name}")
        files[f"{env}.yaml"] = "\n".join(lines) + "\n"
    return files


def stale(files: dict[str, str], folder: Path = HERE) -> list[str]:
    """The names of ``files`` whose text in ``folder`` differs (or which are missing)."""
    differ = []
    for name, text in files.items():
        path = folder / name
        if not path.exists() or path.read_text() != text:
            differ.append(name)
    return differ


def main(argv: list[str]) -> int:
    files = render()
    if argv == ["--check"]:
        differ = stale(files)
        if differ:
            print(f"envs/ out of date ({', '.join(differ)}): run make envs", file=sys.stderr)
        return 1 if differ else 0
    if argv:
        print(__doc__, file=sys.stderr)
        return 2
    for name, text in files.items():
        (HERE / name).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
