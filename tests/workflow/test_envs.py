"""Conda environments of the rules: each exists, pins exactly what the package installs, and
holds every third-party module its rules' scripts import (through the package)."""

import ast
import os
import re
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

from conftest import REPO, run_snakemake

# conda-forge names of the packages whose pip (distribution) names differ
CONDA_NAME = {"torch": "pytorch"}
# provided by the running Snakemake, or the package itself (from the checkout)
NOT_IN_ENVS = {"snakemake", "encscale"}


def rules() -> dict[str, dict[str, Path]]:
    """{rule: {"conda": env file, "script": script}} from the workflow's .smk files."""
    found = {}
    for smk in (REPO / "workflow" / "rules").rglob("*.smk"):
        for block in re.split(r"\n\s*rule ", smk.read_text())[1:]:
            name = block.split(":")[0]
            entry = {}
            for key in ("conda", "script"):
                match = re.search(rf"\n\s+{key}:\s*\n\s+\"([^\"]+)\"", block)
                if match:
                    entry[key] = (smk.parent / match.group(1)).resolve()
            found[name] = entry
    return found


def env_pins(path: Path) -> dict[str, str]:
    """{conda package: version} of an env file; every entry must be an exact pin."""
    pins = {}
    for dep in yaml.safe_load(path.read_text())["dependencies"]:
        name, sep, version = dep.partition("=")
        assert sep and re.fullmatch(r"\d+(\.\d+)*", version), f"{path}: '{dep}' is not exact"
        pins[name] = version
    return pins


def imported_distributions(script: Path) -> set[str]:
    """Third-party distributions imported by ``script`` and the encscale modules it reaches."""
    dists_of = packages_distributions()
    todo, seen, top = [script], set(), set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            for name in names:
                if name.split(".")[0] == "encscale":
                    module = REPO / "src" / Path(*name.split("."))
                    for candidate in (module.with_suffix(".py"), module / "__init__.py"):
                        if candidate.exists():
                            todo.append(candidate)
                else:
                    top.add(name.split(".")[0])
    third_party = top - set(sys.stdlib_module_names) - {"__future__"}
    return {d.lower() for name in third_party for d in dists_of.get(name, [name])}


def pyproject_requirements() -> dict[str, Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return {Requirement(r).name.lower(): Requirement(r) for r in project["dependencies"]}


RULES = rules()


def test_every_rule_with_a_script_names_an_existing_env():
    assert len(RULES) >= 15
    for name, entry in RULES.items():
        if "script" in entry:
            assert "conda" in entry, f"rule {name} has no conda env"
            assert entry["conda"].exists(), f"rule {name}: {entry['conda']} is missing"
            assert entry["script"].exists(), f"rule {name}: {entry['script']} is missing"


@pytest.mark.parametrize("env", sorted((REPO / "envs").glob("*.yaml")), ids=lambda p: p.stem)
def test_env_pins_are_exact_and_agree_with_the_package(env):
    requirements = pyproject_requirements()
    pins = env_pins(env)
    assert "pip" not in pins and pins.get("python") == "3.11"
    for pip_name, requirement in requirements.items():
        conda_name = CONDA_NAME.get(pip_name, pip_name)
        if conda_name in pins:
            assert requirement.specifier.contains(pins[conda_name]), (env.name, requirement)
    # a package pinned exactly in pyproject.toml is pinned to the same version here
    for pip_name, requirement in requirements.items():
        exact = [s.version for s in requirement.specifier if s.operator == "=="]
        conda_name = CONDA_NAME.get(pip_name, pip_name)
        if exact and conda_name in pins:
            assert pins[conda_name] == exact[0], (env.name, pip_name)


@pytest.mark.parametrize("rule", sorted(n for n, e in RULES.items() if "script" in e))
def test_env_holds_what_the_rule_imports(rule):
    entry = RULES[rule]
    needed = imported_distributions(entry["script"]) - NOT_IN_ENVS
    have = set(env_pins(entry["conda"]))
    missing = {d for d in needed if CONDA_NAME.get(d, d) not in have}
    assert not missing, f"rule {rule}: {entry['conda'].name} lacks {sorted(missing)}"


def test_a_script_job_in_a_python_without_encscale_imports_the_checkout(tmp_path, demo_config):
    """A rule's conda env holds the dependencies but not encscale: the job still imports the
    checkout's src/, which the Snakefile puts on the path Snakemake hands to script jobs.

    Emulated without conda: Snakemake runs from a process whose path lacks src/ (as when it
    is installed apart from the package; here the editable install's entry is removed), and
    its wrapper script of a job, kept with --skip-script-cleanup, runs again under a bare
    virtual environment (no packages, no .pth files, no PYTHONPATH), as the env's python
    would run it.
    """
    workdir = tmp_path / "study"
    target = "results/demo/provenance/config.yaml"
    src = str(REPO / "src")
    without_src = (
        sys.executable,
        "-c",
        f"import sys; sys.path[:] = [p for p in sys.path if p != {src!r}]; "
        "from snakemake.cli import main; main()",
    )
    run_snakemake(workdir, demo_config, "--skip-script-cleanup", target, launcher=without_src)
    (wrapper,) = (workdir / ".snakemake" / "scripts").glob("*.study_config.py")
    assert repr(src) in wrapper.read_text()
    expected = (workdir / target).read_bytes()
    (workdir / target).unlink()

    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    probe = "import encscale; print(encscale.__file__)"
    alone = subprocess.run([bare / "bin" / "python", "-c", probe], env=env, capture_output=True)
    assert alone.returncode != 0, "the bare environment should not find encscale by itself"
    job = subprocess.run(
        [bare / "bin" / "python", wrapper], cwd=workdir, env=env, capture_output=True, text=True
    )
    assert job.returncode == 0, job.stderr[-3000:]
    assert (workdir / target).read_bytes() == expected
