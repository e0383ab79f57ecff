"""The Algonauts 2025 (CNeuroMod) layout: paths, run keys, reading runs."""

import h5py
import numpy as np
import pytest

from encscale.data import cneuromod


def test_paths_follow_the_release_layout():
    assert cneuromod.fmri_path("/d", "sub-01", "friends") == (
        "/d/fmri/sub-01/func/sub-01_task-friends_space-MNI152NLin2009cAsym_atlas-Schaefer18_"
        "parcel-1000Par7Net_desc-s123456_bold.h5"
    )
    assert cneuromod.fmri_path("/d", "sub-05", "movie10").endswith(
        "sub-05_task-movie10_space-MNI152NLin2009cAsym_atlas-Schaefer18_parcel-1000Par7Net_bold.h5"
    )
    assert cneuromod.movie_path("/d", "friends_s01e02a") == (
        "/d/stimuli/movies/friends/s1/friends_s01e02a.mkv"
    )
    assert cneuromod.movie_path("/d", "bourne01") == "/d/stimuli/movies/movie10/bourne/bourne01.mkv"
    with pytest.raises(ValueError, match="sub-NN"):
        cneuromod.fmri_path("/d", "subj01", "friends")
    with pytest.raises(ValueError, match="unknown task"):
        cneuromod.fmri_path("/d", "sub-01", "friend")


def test_run_keys():
    run = cneuromod.parse_run("ses-003_task-s01e02a")
    assert (run.session, run.movie, run.repeat) == (3, "friends_s01e02a", 1)
    run = cneuromod.parse_run("ses-012_task-life03_run-2")
    assert (run.session, run.movie, run.repeat) == (12, "life03", 2)
    assert cneuromod.parse_run("ses-001_task-bourne01").repeat == 1
    with pytest.raises(ValueError, match="neither"):
        cneuromod.parse_run("ses-1_task-s01e02a")


def test_read_runs_with_errors_naming_file_and_key(tmp_path):
    path = tmp_path / "bold.h5"
    data = np.random.default_rng(0).normal(size=(40, 1000)).astype(np.float32)
    with h5py.File(path, "w") as h5:
        h5["ses-002_task-s01e01b"] = data
        h5["ses-001_task-s01e01a"] = data[:30]
        h5["ses-003_task-s01e02a"] = np.full((5, 1000), np.nan, np.float32)
    assert [r.movie for r in cneuromod.list_runs(path)] == [
        "friends_s01e01a", "friends_s01e01b", "friends_s01e02a"
    ]  # fmt: skip
    np.testing.assert_array_equal(cneuromod.read_run(path, "ses-002_task-s01e01b"), data)
    with pytest.raises(KeyError, match="bold.h5: no run 'ses-009"):
        cneuromod.read_run(path, "ses-009_task-s01e01a")
    with pytest.raises(ValueError, match="bold.h5: run 'ses-003_task-s01e02a' holds non-finite"):
        cneuromod.read_run(path, "ses-003_task-s01e02a")
    with h5py.File(path, "a") as h5:
        h5["junk"] = data
    with pytest.raises(ValueError, match="bold.h5: fMRI dataset key 'junk'"):
        cneuromod.list_runs(path)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(OSError, match="bold.h5"):
        cneuromod.list_runs(path)
