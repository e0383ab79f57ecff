"""The simulated CNeuroMod movie dataset: real video files, fMRI runs in the release's
layout, and parcel signals that follow the planted truth."""

import h5py
import numpy as np
import pytest

from encscale.data import cneuromod
from encscale.seeds import named_seed
from encscale.simulate.movies import (
    check_params,
    per_tr,
    render_movie,
    shot_starts,
    simulate_movies,
    stimulus_features,
    truth_path,
)
from encscale.video import decode

PARAMS = dict(
    seed=0,
    n_subjects=2,
    runs=["s01e01a", "s01e01b"],
    run_s=30.0,
    fps=8.0,
    frame_size=32,
    n_parcels=12,
    driven_fraction=0.5,
    snr_range=[1.0, 4.0],
    grid=4,
    n_objects=3,
    shot_s=4.0,
)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("cneuromod")
    simulate_movies(root, PARAMS)
    return root


def test_movies_are_real_video_files(dataset):
    for run in PARAMS["runs"]:
        info = decode.probe_video(cneuromod.movie_path(dataset, f"friends_{run}"))
        assert info.n_frames == 240 and info.fps == 8.0 and info.width == info.height == 32
    frames = decode.read_frames(cneuromod.movie_path(dataset, "friends_s01e01a"), 0, 2, 8, 32)
    assert frames.shape == (16, 32, 32, 3) and frames.std() > 0.05  # not blank


def test_movies_read_back_exactly_and_have_shots(dataset):
    n_frames = int(PARAMS["run_s"] * PARAMS["fps"])
    rendered = render_movie(
        np.random.default_rng(named_seed(PARAMS["seed"], "movie", "s01e01b")),
        n_frames,
        PARAMS["frame_size"],
        PARAMS["n_objects"],
        PARAMS["shot_s"] * PARAMS["fps"],
    )
    path = cneuromod.movie_path(dataset, "friends_s01e01b")
    read = decode.read_frames(path, 0, PARAMS["run_s"], PARAMS["fps"], PARAMS["frame_size"])
    np.testing.assert_array_equal(read, rendered.astype(np.float32) / 255 - 0.5)
    # the background (each frame's commonest colour) changes at the shot starts only
    pixels = rendered.reshape(n_frames, -1, 3)
    background = []
    for frame in pixels:
        colours, counts = np.unique(frame, axis=0, return_counts=True)
        background.append(colours[counts.argmax()])
    jumps = np.flatnonzero((np.diff(background, axis=0) != 0).any(axis=1)) + 1
    starts = shot_starts(
        np.random.default_rng(named_seed(PARAMS["seed"], "movie", "s01e01b")),
        n_frames,
        PARAMS["shot_s"] * PARAMS["fps"],
    )
    assert jumps.tolist() == starts[1:].tolist() and len(starts) >= n_frames / 1.5 / 32


def test_fmri_runs_follow_the_layout_and_the_truth(dataset):
    n_trs = int(PARAMS["run_s"] // cneuromod.TR)  # 20
    for subject in ("sub-01", "sub-02"):
        path = cneuromod.fmri_path(dataset, subject, "friends")
        runs = cneuromod.list_runs(path)
        assert [r.key for r in runs] == ["ses-001_task-s01e01a", "ses-002_task-s01e01b"]
        with h5py.File(truth_path(dataset, subject)) as t:
            driven, snr = t["driven"][()], t["snr"][()]
            signal = np.concatenate([t[f"signal/{r.key}"][()] for r in runs])
        bold = np.concatenate([cneuromod.read_run(path, r.key) for r in runs])
        assert bold.shape == (2 * n_trs, PARAMS["n_parcels"])
        assert driven.any() and not driven.all()
        assert not signal[:, ~driven].any()
        np.testing.assert_allclose(signal[:, driven].std(axis=0), 1.0, rtol=1e-5)
        r = [np.corrcoef(bold[:, p], signal[:, p])[0, 1] for p in np.flatnonzero(driven)]
        expected = snr[driven] / np.sqrt(1 + snr[driven] ** 2)  # r of signal + noise/snr
        assert np.all(np.abs(np.array(r) - expected) < 0.35), (r, expected)


def test_subjects_differ_and_the_seed_fixes_everything(dataset, tmp_path):
    simulate_movies(tmp_path, PARAMS)
    for subject in ("sub-01", "sub-02"):
        a = cneuromod.fmri_path(dataset, subject, "friends")
        b = cneuromod.fmri_path(tmp_path, subject, "friends")
        key = "ses-001_task-s01e01a"
        np.testing.assert_array_equal(cneuromod.read_run(a, key), cneuromod.read_run(b, key))
    one, two = (cneuromod.fmri_path(dataset, s, "friends") for s in ("sub-01", "sub-02"))
    assert not np.allclose(
        cneuromod.read_run(one, "ses-001_task-s01e01a"),
        cneuromod.read_run(two, "ses-001_task-s01e01a"),
    )


def test_stimulus_features_and_their_tr_means():
    frames = np.zeros((4, 8, 8, 3), np.uint8)
    frames[1:, :4, :4] = 255  # top-left cell turns white at frame 1
    f = stimulus_features(frames, grid=2)
    assert f.shape == (4, 16)
    np.testing.assert_allclose(f[0], 0)
    np.testing.assert_allclose(f[1, :3], 1.0)  # cell (0, 0) colour
    assert f[1, 12] == pytest.approx(1.0) and f[2, 12] == 0  # motion only at the change
    tr = per_tr(np.arange(30, dtype=float)[:, None], fps=10.0, n_trs=2)  # TR 1.49 s
    np.testing.assert_allclose(tr[:, 0], [np.arange(15).mean(), np.arange(15, 30).mean()])


@pytest.mark.parametrize(
    ("key", "value"),
    [("runs", ["e01"]), ("frame_size", 33), ("grid", 5), ("n_subjects", 5), ("run_s", 2.0)],
)
def test_bad_params_name_the_key(key, value):
    with pytest.raises(ValueError, match=f"'{key}'"):
        check_params(dict(PARAMS, **{key: value}))
    with pytest.raises(ValueError, match="unknown \\['colour'\\]"):
        check_params(dict(PARAMS, colour=1))
