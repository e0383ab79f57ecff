"""A lab's own prepared files: the checker names every missing or malformed dataset (all of
them, not the first), and a sound file is taken into the study unchanged."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import TINY_SIM_PARAMS
from encscale.data.prepare import prepare_stimuli, prepare_subject
from encscale.data.prepared import (
    PreparedDataError,
    import_prepared,
    main,
    responses_problems,
    stimuli_problems,
)
from encscale.simulate.nsd import simulate_nsd


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> dict[str, Path]:
    """The simulator's subject prepared to the contract: a lab's files would look so."""
    base = tmp_path_factory.mktemp("prepared")
    simulate_nsd(base / "raw", TINY_SIM_PARAMS)
    prepare_stimuli(base / "raw", ["subj01"], base / "stimuli.h5")
    prepare_subject(base / "raw", "subj01", base / "stimuli.h5", base / "responses/subj01.h5")
    return {"stimuli": base / "stimuli.h5", "responses": base / "responses/subj01.h5"}


@pytest.fixture
def broken(prepared, tmp_path) -> dict[str, Path]:
    return {k: Path(shutil.copy(v, tmp_path / v.name)) for k, v in prepared.items()}


def test_sound_files_have_no_problems_and_are_taken_as_they_are(prepared, tmp_path):
    with h5py.File(prepared["stimuli"]) as h5:
        n = h5["ids"].shape[0]
    assert stimuli_problems(prepared["stimuli"]) == []
    assert responses_problems(prepared["responses"], n) == []
    dest = tmp_path / "results" / "responses" / "subj01.h5"
    import_prepared(prepared["responses"], dest, [])
    assert dest.read_bytes() == prepared["responses"].read_bytes()  # no provenance given
    assert main(["--stimuli", str(prepared["stimuli"]), str(prepared["responses"])]) == 0


def test_every_problem_of_a_responses_file_is_named(broken, capsys):
    path = broken["responses"]
    with h5py.File(path, "a") as h5:
        del h5["noise_ceiling"]  # missing
        del h5["test/stimulus"]  # missing
        h5["train/responses"][0, 0] = np.nan  # not finite
        h5["train/extra"] = np.zeros(3)  # not in the layout
        rows = h5["train/stimulus"][()]
        del h5["train/stimulus"]
        h5["train/stimulus"] = rows + 10_000  # outside stimuli.h5
        del h5["affine"]  # a volume in part
        n_voxels = h5["train/responses"].shape[1]
        del h5["ncsnr"]
        h5["ncsnr"] = np.zeros(n_voxels + 1, np.float32)  # wrong length
    problems = responses_problems(path, 30)
    expected = [
        "dataset 'noise_ceiling' is missing",
        "dataset 'test/stimulus' is missing",
        "dataset 'train/responses' holds NaN or inf",
        "dataset 'train/extra' is not part of the layout",
        "dataset 'train/stimulus' has rows outside stimuli.h5's 30 stimuli",
        "datasets ['affine'] are missing beside ['voxel_ijk', 'mask']",
        f"'ncsnr' has {n_voxels + 1} voxels, but most of the file has {n_voxels}",
    ]
    for text in expected:
        assert sum(text in p for p in problems) == 1, (text, problems)
    assert len(problems) == len(expected) and all(p.startswith(f"{path}: ") for p in problems)
    with pytest.raises(PreparedDataError, match="noise_ceiling' is missing") as err:
        import_prepared(path, broken["responses"].with_name("out.h5"), problems)
    assert str(err.value).count("\n") == len(expected)
    assert not broken["responses"].with_name("out.h5").exists()
    assert main(["--stimuli", str(broken["stimuli"]), str(path)]) == 1
    assert "holds NaN or inf" in capsys.readouterr().out


def test_every_problem_of_a_stimuli_file_is_named(broken, tmp_path):
    path = broken["stimuli"]
    with h5py.File(path, "a") as h5:
        images = h5["images"][()]
        del h5["images"]
        h5["images"] = images[..., :2].astype(np.float32)  # two channels, float
        ids = h5["ids"][()]
        del h5["ids"]
        h5["ids"] = ids[::-1]  # not sorted
    problems = stimuli_problems(path)
    assert any("'images' is float32, expected uint8" in p for p in problems), problems
    assert any("'images' has shape" in p and "expected" in p for p in problems), problems
    assert any("'ids' is not sorted and unique" in p for p in problems), problems
    assert len(problems) == 3
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(broken["responses"].read_bytes()[:2000])
    assert "not a readable HDF5 file" in responses_problems(truncated)[0]
    assert stimuli_problems(tmp_path / "absent.h5") == [
        f"{tmp_path / 'absent.h5'}: the file does not exist"
    ]
