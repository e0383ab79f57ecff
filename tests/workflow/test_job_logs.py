"""A job's log through a real Snakemake run: the start and end lines, progress, and the full
traceback of a job that fails while its script imports the package's modules."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

SNAKEMAKE = Path(sys.executable).with_name("snakemake")

SNAKEFILE = """
rule counts:
    output: "out/counts_{subject}.txt"
    log: "logs/counts/{subject}.log"
    threads: 1
    resources: mem_mb=300, runtime=2
    script: "scripts/counts.py"

rule broken:
    output: "out/broken_{subject}.txt"
    log: "logs/broken/{subject}.log"
    threads: 1
    resources: mem_mb=500, runtime=5, gpu=1
    script: "scripts/broken.py"
"""

# Both scripts enter the job's setting first and import inside it, as the workflow's do.
COUNTS = """
from encscale.jobs import job_context

with job_context(snakemake):
    from encscale.jobs import progress

    total = 0
    for i in progress(range(4), desc="counting", unit="steps", interval=0):
        total += i
    with open(snakemake.output[0], "w") as out:
        out.write(str(total))
"""

BROKEN = """
from encscale.jobs import job_context

with job_context(snakemake):
    import model_library  # a module beside this script, whose own import fails

    open(snakemake.output[0], "w").close()
"""

MODEL_LIBRARY = """
try:
    import encscale_no_such_extension
except ModuleNotFoundError as err:
    raise ImportError("the model library cannot be loaded") from err
"""


def test_job_logs_say_how_each_job_ended(tmp_path):
    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    for name, text in [("counts", COUNTS), ("broken", BROKEN), ("model_library", MODEL_LIBRARY)]:
        (scripts / f"{name}.py").write_text(textwrap.dedent(text))
    proc = subprocess.run(
        [
            str(SNAKEMAKE),
            "--snakefile",
            str(tmp_path / "Snakefile"),
            "--directory",
            str(tmp_path),
            "--cores",
            "2",
            "--resources",
            "gpu=1",
            "--keep-going",
            "out/counts_subj01.txt",
            "out/broken_subj02.txt",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=dict(os.environ, PYTHONHASHSEED="0"),
        timeout=120,
    )
    assert proc.returncode != 0, proc.stderr[-3000:]
    assert (tmp_path / "out" / "counts_subj01.txt").read_text() == "6"

    ok = (tmp_path / "logs" / "counts" / "subj01.log").read_text().splitlines()
    assert "job start: rule counts (subject=subj01); threads 1; mem_mb 300, runtime 2 min;" in ok[0]
    assert f"pid {os.getpid()}" not in ok[0]  # the job's own process
    assert any("encscale.progress INFO: counting: 2/4 steps (50%)" in line for line in ok)
    assert "counting: 4/4 steps (100%)" in ok[-2] and ok[-2].endswith("done")
    assert "encscale.jobs INFO: job end: rule counts ok after " in ok[-1]
    assert " MiB resident (children " in ok[-1]

    failed = tmp_path / "logs" / "broken" / "subj02.log"
    text = failed.read_text()
    lines = text.splitlines()
    start = "job start: rule broken (subject=subj02); threads 1; mem_mb 500, runtime 5 min, gpu 1;"
    assert start in lines[0]
    assert "encscale.jobs ERROR: rule broken failed" in text
    # the whole chain: the missing module, then the error the library raised from it
    assert text.count("Traceback (most recent call last):") == 2
    assert "ModuleNotFoundError: No module named 'encscale_no_such_extension'" in text
    assert "The above exception was the direct cause of the following exception:" in text
    assert "import model_library" in text and 'model_library.py", line 3' in text
    assert "ImportError: the model library cannot be loaded" in text
    assert (
        "encscale.jobs ERROR: job end: rule broken failed (ImportError: the model library "
        in (lines[-1])
    )
    assert not (tmp_path / "out" / "broken_subj02.txt").exists()
