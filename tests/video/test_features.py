"""The movie study's encoding features on the simulated movies: spatial features (the code
grid kept, max-pooled to k × k at fit time) against the global mean, and several
haemodynamic lags (FIR, or chosen per parcel), recovering the simulator's planted truth.

The movies, their codes and a tiny GPT-2 are built once (module fixture): the codes are
each 4 × 4-pixel patch's colour (averaged over 4 frames) quantised to 4 levels a channel,
and the GPT-2's code embedding holds that colour (the first three of its 16 dimensions; a
trained GPT-2 learns what its codes mean, a random one would make every code an arbitrary
vector that a ridge fit on 300 TRs cannot decode). Two subjects' fMRI are simulated from the
same movies: one whose driven parcels follow one grid cell's colour contrast
(``receptive_field: cell``), one whose parcels peak at lags drawn from {2, 4, 6} TRs.
"""

import h5py
import numpy as np
import pytest
import torch

from encscale.contracts import open_features, write_movie_stimuli
from encscale.data import cneuromod
from encscale.data.movies import prepare_movie_subject
from encscale.encoding.fit import (
    LaggedReader,
    LaggedSet,
    alpha_grid,
    fit_encoding,
    lagged_sets,
    read_set,
)
from encscale.simulate.movies import simulate_movies
from encscale.video.clips import clip_seconds, movie_durations, read_clips, tr_clip_table
from encscale.video.decode import read_frames
from encscale.video.features import extract_gpt_features, pooled_hidden_states
from encscale.video.gpt import GPTSpec, build_gpt, load_gpt, save_gpt

RUNS = ["s01e01a", "s01e01b", "s01e02a", "s01e02b", "s01e03a", "s01e03b"]
TEST_MOVIES = ["friends_s01e03a", "friends_s01e03b"]
SIM = dict(
    seed=0,
    n_subjects=1,
    runs=RUNS,
    run_s=90.0,
    fps=8.0,
    frame_size=32,
    n_parcels=24,
    driven_fraction=0.5,
    snr_range=[1.0, 3.0],
    grid=4,
    n_objects=3,
    shot_s=4.0,
)
LEVELS = 4  # colour levels a channel: 64 codes
POOL_SIZES = [1, 2, 4, 8]
PLANTED_LAGS = [2, 4, 6]


def colour_codes(clips: np.ndarray) -> np.ndarray:
    """(N, 3, 8, 32, 32) clips in [-0.5, 0.5] → (N, 2, 8, 8) codes: each 4 frames × 4 × 4
    pixels' mean colour, quantised to LEVELS a channel."""
    x = clips.reshape(len(clips), 3, 2, 4, 8, 4, 8, 4).mean(axis=(3, 5, 7)) + 0.5
    q = np.clip(np.floor(x * LEVELS), 0, LEVELS - 1).astype(np.int16)
    return (q[:, 0] * LEVELS + q[:, 1]) * LEVELS + q[:, 2]


def colour_gpt(path) -> None:
    """A one-block GPT-2 whose code embedding holds each code's colour (centred levels) in
    its first three dimensions, without position embeddings."""
    n_codes = LEVELS**3
    spec = GPTSpec(width=16, layers=1, heads=2, context=2 * 8 * 8 + 1, n_codes=n_codes)
    model = build_gpt(spec, seed=0)
    levels = np.stack(np.unravel_index(np.arange(n_codes), (LEVELS,) * 3), axis=1)
    with torch.no_grad():
        model.transformer.wte.weight[:n_codes, :3] = torch.from_numpy(
            levels / (LEVELS - 1) - 0.5
        ).float()
        model.transformer.wpe.weight.zero_()
    save_gpt(model, spec, path)


@pytest.fixture(scope="module")
def movies(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("movie_features")
    roots = {"cell": tmp / "cell", "lags": tmp / "lags"}
    simulate_movies(roots["cell"], dict(SIM, receptive_field="cell"))
    simulate_movies(roots["lags"], dict(SIM, lags=PLANTED_LAGS))
    paths = {f"friends_{r}": cneuromod.movie_path(roots["cell"], f"friends_{r}") for r in RUNS}
    # the movies do not depend on the parcels' settings: one stimuli file serves both
    one, other = (cneuromod.movie_path(r, "friends_s01e01a") for r in roots.values())
    np.testing.assert_array_equal(
        read_frames(one, 0, 3, 8.0, 32), read_frames(other, 0, 3, 8.0, 32)
    )
    table = tr_clip_table(movie_durations(paths), cneuromod.TR, clip_seconds(8, 8.0))
    codes = colour_codes(read_clips(paths, table, 8, 8.0, 32))
    stimuli = tmp / "stimuli.h5"
    attrs = dict(tr=cneuromod.TR, n_codes=LEVELS**3, frames=8, fps=8.0, size=32)
    write_movie_stimuli(stimuli, table, codes, attrs)
    colour_gpt(tmp / "gpt.pt")
    features = {}
    for pooling in ("mean", "spatial"):
        features[pooling] = tmp / f"features_{pooling}.h5"
        extract_gpt_features(
            stimuli, tmp / "gpt.pt", features[pooling], name="colour", pooling=pooling
        )
    truth = {}
    for name, root in roots.items():
        with h5py.File(root / "truth" / "sub-01.h5") as t:
            truth[name] = {key: t[key][()] for key in ("driven", "lag", "cell")}
    return dict(tmp=tmp, roots=roots, stimuli=stimuli, features=features, truth=truth)


def responses(movies, dataset: str, lags: list[int], window_trs: int = 1):
    path = movies["tmp"] / f"responses_{dataset}_{'_'.join(map(str, lags))}_w{window_trs}.h5"
    if not path.exists():
        prepare_movie_subject(
            [cneuromod.fmri_path(movies["roots"][dataset], "sub-01", "friends")],
            movies["stimuli"],
            path,
            subject="sub-01",
            test_movies=TEST_MOVIES,
            lag=lags,
            window_trs=window_trs,
        )
    return path


def fit(movies, dataset, pooling, lags, lag_mode="fir", pool_sizes=POOL_SIZES, window_trs=1):
    """(test r, each parcel's chosen set) of a fit on every training TR."""
    out = movies["tmp"] / "fit.h5"
    fit_encoding(
        responses(movies, dataset, lags, window_trs),
        movies["features"][pooling],
        out,
        size=None,
        seed=0,
        n_folds=5,
        alphas=alpha_grid(-1, 5, 13),
        pool_sizes=pool_sizes,
        lag_mode=lag_mode,
    )
    with h5py.File(out) as f:
        return f["test_r"][()], f["feature_sets"][()].astype(str)[f["best_set"][()]]


def test_spatial_features_are_layer_maps_on_the_code_grid(movies):
    """spatial: each layer's hidden states averaged over the code frames, stored as a
    width × 8 × 8 map, whose mean over the grid is the mean route's features; the fits pool
    every map to each k of pool_sizes."""
    with open_features(movies["features"]["mean"]) as mean:
        assert not mean.maps and [fs.name for fs in mean.sets] == ["h0/k1", "h1/k1"]
        mean_x = [mean.read_rows(fs, np.arange(mean.n_stimuli)) for fs in mean.sets]
    with open_features(movies["features"]["spatial"]) as spatial:
        assert spatial.h5.attrs["pooling"] == "spatial" and not spatial.sets
        assert [(m.layer, m.channels, m.height, m.width) for m in spatial.maps] == [
            ("h0", 16, 8, 8),
            ("h1", 16, 8, 8),
        ]
        assert [fs.name for fs in spatial.fit_sets(POOL_SIZES)] == [
            f"h{i}/k{k}" for i in (0, 1) for k in POOL_SIZES
        ]
        for lm, x in zip(spatial.maps, mean_x, strict=True):
            grid_mean = spatial.read_map(lm, np.arange(spatial.n_stimuli)).mean(axis=(2, 3))
            np.testing.assert_allclose(grid_mean, x, atol=1e-5)
    # h0 is the code embedding: its map holds each position's colour, averaged over time
    with h5py.File(movies["stimuli"]) as s:
        codes = s["codes"][:5].astype(np.int64)
    model, spec = load_gpt(movies["tmp"] / "gpt.pt")
    colour = model.transformer.wte.weight[: spec.n_codes, :3].detach().numpy()
    with open_features(movies["features"]["spatial"]) as spatial:
        h0 = spatial.read_map(spatial.maps[0], np.arange(5))
    expected = colour[codes].mean(axis=1).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(h0[:, :3], expected, atol=1e-6)
    layers = pooled_hidden_states(model, codes.astype(np.int16), spec.n_codes, "fp32", 2)
    np.testing.assert_allclose(layers[0], mean_x[0][:5], atol=1e-6)


def test_spatial_features_beat_the_global_mean_on_driven_parcels(movies):
    """Parcels that follow one grid cell's colour contrast: the mean over every code
    position cannot tell where the colour is, the code grid max-pooled to k × k can
    (held-out episode, mean test r over the driven parcels)."""
    driven = movies["truth"]["cell"]["driven"]
    assert (movies["truth"]["cell"]["cell"][driven] >= 0).all()
    r_mean, chosen_mean = fit(movies, "cell", "mean", [3])
    r_spatial, chosen = fit(movies, "cell", "spatial", [3])
    assert set(chosen_mean) <= {"h0/k1", "h1/k1"}
    assert {name.split("/")[1] for name in chosen[driven]} - {"k1"}  # finer grids chosen
    assert r_spatial[driven].mean() > 0.2, r_spatial[driven]
    assert r_spatial[driven].mean() > r_mean[driven].mean() + 0.1, (
        r_spatial[driven].mean(),
        r_mean[driven].mean(),
    )
    assert abs(r_spatial[~driven].mean()) < 0.1


def test_select_recovers_each_parcels_planted_lag(movies):
    """Each driven parcel's HRF peaks at a lag drawn from {2, 4, 6} TRs; with the three lags
    as separate sets, the cross-validation's choice is the planted lag."""
    truth = movies["truth"]["lags"]
    driven, planted = truth["driven"], truth["lag"]
    assert set(planted[driven]) == set(PLANTED_LAGS) and (planted[~driven] == -1).all()
    r, chosen = fit(movies, "lags", "mean", PLANTED_LAGS, lag_mode="select")
    assert set(chosen) <= {f"h{i}/k1/lag{lag}" for i in (0, 1) for lag in PLANTED_LAGS}
    lag = np.array([int(name.rsplit("/lag", 1)[1]) for name in chosen])
    assert np.mean(lag[driven] == planted[driven]) >= 0.8, (lag[driven], planted[driven])
    assert r[driven].mean() > 0.4


def test_fir_over_the_planted_lags_beats_a_single_wrong_lag(movies):
    """The three lags' features concatenated (one set per layer) predict every driven parcel;
    one lag fits only the parcels that peak near it."""
    truth = movies["truth"]["lags"]
    driven, planted = truth["driven"], truth["lag"]
    r_fir, chosen = fit(movies, "lags", "mean", PLANTED_LAGS, lag_mode="fir")
    assert set(chosen) <= {"h0/k1", "h1/k1"}
    r_wrong, _ = fit(movies, "lags", "mean", [0])
    r_middle, _ = fit(movies, "lags", "mean", [4])
    assert r_fir[driven].mean() > r_wrong[driven].mean() + 0.3, (r_fir, r_wrong)
    elsewhere = driven & (planted != 4)
    assert r_fir[elsewhere].mean() > r_middle[elsewhere].mean() + 0.1, (r_fir, r_middle)


def test_lagged_reader_concatenates_lags_and_averages_windows(movies):
    """A set at several lags, each the mean over a window of TR clips: the rows looked up
    per sample from the features file's one row per TR clip."""
    with open_features(movies["features"]["spatial"]) as features:
        base = features.fit_sets([2])[0]  # h0 pooled to 2 × 2: 64 columns
        lagged = np.array([[[0, 1], [4, 5]], [[2, 3], [6, 7]], [[1, 1], [0, 0]]])  # n=3, L=2, W=2
        reader = LaggedReader(features)
        (fir,) = lagged_sets([base], [3, 5], "fir")
        x = reader(fir, lagged)
        rows = read_set(features, base, np.arange(8))
        expected = np.concatenate([rows[lagged[:, i]].mean(axis=1) for i in (0, 1)], axis=1)
        np.testing.assert_allclose(x, expected, rtol=1e-6)
        select = lagged_sets([base], [3, 5], "select")
        assert [s.name for s in select] == ["h0/k2/lag3", "h0/k2/lag5"]
        np.testing.assert_allclose(reader(select[1], lagged), expected[:, 64:], rtol=1e-6)
        # one lag of one clip: the base set's rows, as the fits read them before lags
        one = LaggedSet(base, (0,), base.name)
        np.testing.assert_array_equal(reader(one, lagged[:, :1, 1:]), rows[lagged[:, 0, 1]])
    with pytest.raises(ValueError, match="lag_mode must be one of"):
        lagged_sets([base], [3], "sum")


def test_window_of_tr_clips_per_lag(movies):
    """clips.window_trs 2: each lag's features the mean of two TR clips; the fits run, and the
    samples lost are those whose earliest clip is missing."""
    one = responses(movies, "lags", [4])
    two = responses(movies, "lags", [4], window_trs=2)
    with h5py.File(one) as a, h5py.File(two) as b:
        assert b["train/lagged"].shape[1:] == (1, 2)
        np.testing.assert_array_equal(b["train/stimulus"][()], b["train/lagged"][:, 0, 1])
        np.testing.assert_array_equal(b["train/lagged"][:, 0, 0], b["train/lagged"][:, 0, 1] - 1)
        n_train_runs = len(RUNS) - len(TEST_MOVIES)  # one TR less in each
        assert len(a["train/tr"]) - len(b["train/tr"]) == n_train_runs
        assert list(b.attrs["lags"]) == [4] and b.attrs["window_trs"] == 2
    r, _ = fit(movies, "lags", "mean", [4], window_trs=2)
    assert np.isfinite(r).all()
