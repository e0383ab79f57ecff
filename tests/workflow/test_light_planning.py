"""Planning a study imports only light modules: a dry run never loads torch, timm,
transformers or PyAV (the workflow's settings read the package's path and grid helpers, not
its models)."""

import json
import os
import subprocess
import sys

import pytest
import yaml

from conftest import NO_NETWORK, REPO

HEAVY = ("torch", "timm", "transformers", "av")

# Snakemake's command line in this process, then the heavy modules it left in sys.modules;
# then torch imported on purpose, and the same check again (it must see torch).
PLAN = """
import json, sys
from snakemake.cli import main

heavy = {heavy!r}
try:
    main(sys.argv[1:])
except SystemExit as stop:
    code = stop.code
loaded = [m for m in heavy if m in sys.modules]
import torch
control = [m for m in heavy if m in sys.modules]
print(json.dumps(dict(code=code, loaded=loaded, control=control)))
"""


def plan_in_subprocess(workdir, configfile) -> dict:
    """Dry-run ``configfile`` in a fresh Python; → its exit code and heavy modules loaded."""
    config = yaml.safe_load(configfile.read_text())
    (workdir / "study.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    args = ["--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir)]
    args += ["--configfile", str(workdir / "study.yaml"), "--cores", "1", "-n", "-q"]
    proc = subprocess.run(
        [sys.executable, "-c", PLAN.format(heavy=HEAVY), *args],
        capture_output=True,
        text=True,
        cwd=workdir,
        env=dict(os.environ, **NO_NETWORK),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("study", ["nsd", "demo_movies"])
def test_dry_run_imports_no_heavy_module(tmp_path, study):
    result = plan_in_subprocess(tmp_path, REPO / "config" / f"{study}.yaml")
    assert result["code"] == 0
    assert result["loaded"] == [], f"planning {study} imported {result['loaded']}"
    assert "torch" in result["control"]  # the check sees torch once it is imported
