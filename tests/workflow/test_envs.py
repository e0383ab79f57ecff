"""Dependencies: constraints.txt pins every direct dependency within pyproject.toml's ranges,
and the environment holds those versions; the conda environments of the rules are generated
from it, and each exists and holds every third-party module its rules' scripts import
(through the package); without the optional video extra, the image study's modules import
and plan, and the movie study's say how to install it."""

import ast
import importlib.util
import json
import os
import re
import subprocess
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, packages_distributions, version
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.version import Version

from conftest import NO_NETWORK, REPO, run_snakemake


def load_generator():
    spec = importlib.util.spec_from_file_location("envs_generate", REPO / "envs" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GENERATE = load_generator()
canonical, conda_name = GENERATE.canonical, GENERATE.conda_name
PINS = GENERATE.read_pins()
# provided by the running Snakemake, or the package itself (from the checkout)
NOT_IN_ENVS = {"snakemake", "encscale"}
VIDEO_HINT = 'pip install "encscale[video]"'


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


def pyproject_requirements() -> dict[str, list[Requirement]]:
    """{canonical name: its requirements} of the core and of every extra (``encscale`` itself,
    which ``dev`` names for the other extras, left out)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    lists = [project["dependencies"], *project["optional-dependencies"].values()]
    found: dict[str, list[Requirement]] = {}
    for requirement in map(Requirement, (r for listed in lists for r in listed)):
        if canonical(requirement.name) != "encscale":
            found.setdefault(canonical(requirement.name), []).append(requirement)
    return found


RULES = rules()


def test_every_rule_with_a_script_names_an_existing_env():
    assert len(RULES) >= 15
    for name, entry in RULES.items():
        if "script" in entry:
            assert "conda" in entry, f"rule {name} has no conda env"
            assert entry["conda"].exists(), f"rule {name}: {entry['conda']} is missing"
            assert entry["script"].exists(), f"rule {name}: {entry['script']} is missing"


def test_the_pins_pin_every_direct_dependency_within_its_range():
    requirements = pyproject_requirements()
    assert set(PINS) == set(requirements), (
        "constraints.txt and pyproject.toml name different packages: "
        f"only pinned {sorted(set(PINS) - set(requirements))}, "
        f"not pinned {sorted(set(requirements) - set(PINS))}"
    )
    for name, listed in requirements.items():
        for requirement in listed:
            assert requirement.specifier.contains(PINS[name]), (PINS[name], str(requirement))
    assert PINS["torch"] == "2.13.0"


def test_the_environment_installs_the_pins():
    """What is installed (make installs with constraints.txt) is what is pinned, a local
    version label aside (torch's +cpu or +cu128 build); a package not installed is skipped
    (an extra left out)."""
    installed = {}
    for name in PINS:
        try:
            installed[name] = version(name)
        except PackageNotFoundError:
            continue
    assert {"torch", "timm", "snakemake"} <= set(installed)
    differ = {
        name: f"{have} installed, {PINS[name]} pinned"
        for name, have in installed.items()
        if Version(Version(have).public) != Version(PINS[name])
    }
    assert not differ, f"the environment is not constraints.txt's (run make): {differ}"


def test_the_envs_are_generated_from_the_pins():
    files = GENERATE.render(PINS)
    assert {p.name for p in (REPO / "envs").glob("*.yaml")} == set(files)
    stale = GENERATE.stale(files)
    assert not stale, f"envs/ differs from envs/generate.py's output ({stale}): run make envs"


@pytest.mark.parametrize("env", sorted((REPO / "envs").glob("*.yaml")), ids=lambda p: p.stem)
def test_env_pins_are_exact_and_agree_with_the_pins(env):
    pins = env_pins(env)
    assert "pip" not in pins and pins.get("python") == "3.11"
    conda_pins = {conda_name(name): pinned for name, pinned in PINS.items()}
    for package, pinned in pins.items():
        if package == "python" or package in GENERATE.CONDA_ONLY:
            continue
        assert package in conda_pins, f"{env.name}: {package} is not in constraints.txt"
        assert pinned == conda_pins[package], (env.name, package, pinned, conda_pins[package])


@pytest.mark.parametrize("rule", sorted(n for n, e in RULES.items() if "script" in e))
def test_env_holds_what_the_rule_imports(rule):
    entry = RULES[rule]
    needed = imported_distributions(entry["script"]) - NOT_IN_ENVS
    have = set(env_pins(entry["conda"]))
    missing = {d for d in needed if conda_name(d) not in have}
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


# A Python in which the video extra's packages are missing: their imports fail as they would
# without them installed (ModuleNotFoundError naming the module).
WITHOUT_VIDEO = """
import sys

class Missing:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {"av", "transformers", "datalad"}:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Missing())
"""
# modules of the movie study, which may need the video extra
MOVIE_MODULES = ("encscale.video", "encscale.simulate.movies", "encscale.data.datalad_fetch")

IMPORT_ALL = """
import json, pkgutil, tempfile
import encscale

failed = {}
for info in pkgutil.walk_packages(encscale.__path__, "encscale."):
    try:
        __import__(info.name)
    except ImportError as err:
        failed[info.name] = str(err)

from encscale.video.gpt import GPTSpec, build_gpt
from encscale.data.datalad_fetch import is_dataset

calls = {}
for name, call in [
    ("build_gpt", lambda: build_gpt(GPTSpec(width=8, layers=1, heads=1, context=4, n_codes=4))),
    ("is_dataset", lambda: is_dataset(tempfile.gettempdir())),
]:
    try:
        call()
        calls[name] = None
    except ImportError as err:
        calls[name] = str(err)
print(json.dumps(dict(failed=failed, calls=calls)))
"""


def test_without_the_video_extra_the_image_modules_import_and_the_movie_ones_say_so():
    proc = subprocess.run(
        [sys.executable, "-c", WITHOUT_VIDEO + IMPORT_ALL], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    outside = {m: e for m, e in result["failed"].items() if not m.startswith(MOVIE_MODULES)}
    assert not outside, f"without the video extra, these do not import: {outside}"
    assert "encscale.video.decode" in result["failed"]  # PyAV at its top
    for name, message in [*result["failed"].items(), *result["calls"].items()]:
        assert message and VIDEO_HINT in message, (name, message)


def test_planning_the_image_study_needs_no_video_extra(tmp_path):
    plan = WITHOUT_VIDEO + "from snakemake.cli import main\nmain(sys.argv[1:])\n"
    args = ["--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path)]
    args += ["--configfile", str(REPO / "config" / "config.yaml"), "--cores", "1", "-n", "-q"]
    proc = subprocess.run(
        [sys.executable, "-c", plan, *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=dict(os.environ, **NO_NETWORK),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
