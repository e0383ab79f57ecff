"""HDF5 readers without file locking: a file another process writes, or many jobs read."""

import ast
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from encscale.io import open_h5, read_h5
from encscale.provenance import read_provenance, write_provenance

REPO = Path(__file__).resolve().parents[1]

HOLD_FOR_WRITING = """
import sys, h5py
h5 = h5py.File(sys.argv[1], "a")  # HDF5's default: an exclusive lock while open
print("open", flush=True)
sys.stdin.read()  # until the test closes our stdin
h5.close()
"""


@pytest.fixture
def stimuli(tmp_path):
    path = tmp_path / "stimuli.h5"
    with h5py.File(path, "w") as h5:
        h5["images"] = np.arange(24, dtype=np.uint8).reshape(2, 2, 2, 3)
        write_provenance(h5, {"rule": "prepare_stimuli"})
    return path


@pytest.fixture
def held_for_writing(stimuli, monkeypatch):
    """``stimuli`` open for writing in another process, with HDF5's locking, until the end."""
    monkeypatch.delenv("HDF5_USE_FILE_LOCKING", raising=False)  # locking as HDF5 does it
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD_FOR_WRITING, str(stimuli)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "open"
        yield stimuli
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)


def test_a_file_locked_by_a_writer_cannot_be_read_with_locking(held_for_writing):
    """What the readers below avoid: h5py's default open fails on the writer's lock."""
    with pytest.raises(OSError, match="lock"):
        h5py.File(held_for_writing, "r")


def test_our_readers_read_a_file_locked_by_a_writer(held_for_writing):
    with read_h5(held_for_writing) as h5:
        assert h5["images"].shape == (2, 2, 2, 3)
    with open_h5(held_for_writing, "stimuli") as h5:
        assert int(h5["images"][1, 1, 1, 2]) == 23
    assert read_provenance(held_for_writing)["rule"] == "prepare_stimuli"


def test_one_file_open_twice_for_reading_at_once(stimuli):
    with read_h5(stimuli) as a, open_h5(stimuli, "stimuli") as b:
        assert np.array_equal(a["images"][()], b["images"][()])
        assert read_provenance(stimuli)["rule"] == "prepare_stimuli"  # a third, meanwhile


def test_a_file_object_is_read_too(stimuli):
    with open(stimuli, "rb") as raw, read_h5(raw) as h5:
        assert h5["images"].dtype == np.uint8


def test_open_h5_names_a_missing_or_broken_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="features.h5: features file is missing"):
        open_h5(tmp_path / "features.h5", "features")
    (tmp_path / "broken.h5").write_bytes(b"not HDF5")
    with pytest.raises(OSError, match="broken.h5: cannot read fit file"):
        open_h5(tmp_path / "broken.h5", "fit")


def h5py_file_calls(path: Path) -> list[tuple[str, dict]]:
    """Each ``h5py.File(...)`` call in ``path``: its mode (h5py's default "r" when not given)
    and its keyword arguments (as source text)."""
    calls = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not (isinstance(node, ast.Call) and ast.unparse(node.func) == "h5py.File"):
            continue
        keywords = {k.arg: ast.unparse(k.value) for k in node.keywords}
        mode = ast.unparse(node.args[1]) if len(node.args) > 1 else keywords.get("mode", "'r'")
        calls.append((mode.strip("'\""), keywords))
    return calls


def test_every_reader_opens_without_locking_through_one_helper():
    """Read-only opens go through encscale.io.read_h5 (provenance, below io, has the one
    other); writers keep HDF5's locking."""
    files = [*(REPO / "src" / "encscale").rglob("*.py"), *(REPO / "workflow/scripts").glob("*.py")]
    readers, writers = [], []
    for path in files:
        for mode, keywords in h5py_file_calls(path):
            (readers if mode == "r" else writers).append((path.name, keywords))
    assert sorted(name for name, _ in readers) == ["io.py", "provenance.py"]
    assert all(keywords.get("locking") == "False" for _, keywords in readers)
    assert writers and all("locking" not in keywords for _, keywords in writers)
