"""The simulated CNeuroMod movie dataset: real video files, fMRI runs in the release's
layout, and parcel signals that follow the planted truth."""

import h5py
import numpy as np
import pytest

from encscale.data import cneuromod
from encscale.seeds import named_seed
from encscale.simulate.movies import (
    HRF_PEAK_TRS,
    cell_columns,
    check_params,
    lagged_hrf,
    local_contrast,
    parcel_lags,
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
    [
        ("runs", ["e01"]),
        ("frame_size", 33),
        ("grid", 5),
        ("n_subjects", 5),
        ("run_s", 2.0),
        ("lags", []),
        ("lags", [-1]),
        ("receptive_field", "voxel"),
    ],
)
def test_bad_params_name_the_key(key, value):
    with pytest.raises(ValueError, match=f"'{key}'"):
        check_params(dict(PARAMS, **{key: value}))
    with pytest.raises(ValueError, match="unknown \\['colour'\\]"):
        check_params(dict(PARAMS, colour=1))


def test_default_parcels_peak_at_the_canonical_hrf_lag(dataset):
    """Without lags or receptive fields, the dataset is the one simulated before they were
    options: every driven parcel the canonical HRF (its peak, 3 TRs, its lag) and every cell."""
    assert HRF_PEAK_TRS == 3
    with h5py.File(truth_path(dataset, "sub-01")) as t:
        driven, lag, cell = t["driven"][()], t["lag"][()], t["cell"][()]
    assert (lag[driven] == 3).all() and (lag[~driven] == -1).all() and (cell == -1).all()
    np.testing.assert_array_equal(lagged_hrf(cneuromod.TR, 3), decode.canonical_hrf(cneuromod.TR))


def test_planted_lags_and_receptive_fields_follow_the_truth(dataset, tmp_path):
    """lags: each driven parcel's response is its drive through the HRF shifted to peak at
    its planted lag; cell: its weights hold one grid cell's features, the colour as contrast
    to the frame. The movies and the other parcels' numbers are those of the default."""
    params = dict(PARAMS, n_subjects=1, lags=[2, 5], receptive_field="cell")
    simulate_movies(tmp_path, params)
    n_frames, n_trs = int(PARAMS["run_s"] * PARAMS["fps"]), int(PARAMS["run_s"] // cneuromod.TR)
    with (
        h5py.File(truth_path(tmp_path, "sub-01")) as t,
        h5py.File(truth_path(dataset, "sub-01")) as default,
    ):
        driven, lag, cell, weights = (t[k][()] for k in ("driven", "lag", "cell", "weights"))
        signal = t["signal/ses-001_task-s01e01a"][()]
        np.testing.assert_array_equal(driven, default["driven"][()])
        np.testing.assert_array_equal(t["snr"][()], default["snr"][()])
    assert set(lag[driven]) <= {2, 5} and (lag[~driven] == -1).all()
    many = parcel_lags(named_seed(0, "lags"), np.arange(100) % 3 > 0, [2, 5])
    assert set(many[np.arange(100) % 3 > 0]) == {2, 5} and (many[::3] == -1).all()
    assert (cell[driven] >= 0).all() and (cell[~driven] == -1).all()
    np.testing.assert_array_equal(
        weights != 0, cell_columns(cell, PARAMS["grid"]) & driven[:, None]
    )
    frames = render_movie(
        np.random.default_rng(named_seed(PARAMS["seed"], "movie", "s01e01a")),
        n_frames,
        PARAMS["frame_size"],
        PARAMS["n_objects"],
        PARAMS["shot_s"] * PARAMS["fps"],
    )
    features = local_contrast(stimulus_features(frames, PARAMS["grid"]), PARAMS["grid"])
    np.testing.assert_allclose(features[:, :48].reshape(-1, 16, 3).sum(axis=1), 0, atol=1e-5)
    tr = per_tr(features, PARAMS["fps"], n_trs)
    # up to its scale (the std over both runs), the signal is the drive through the lagged HRF
    drive = (tr - tr.mean(axis=0)) @ weights.T
    for p in np.flatnonzero(driven):
        expected = np.convolve(drive[:, p], lagged_hrf(cneuromod.TR, lag[p]))[:n_trs]
        r = np.corrcoef(expected, signal[:, p])[0, 1]
        assert r > 0.999, (p, lag[p], r)
        peak = np.argmax(lagged_hrf(cneuromod.TR, lag[p]))
        assert peak == lag[p]
