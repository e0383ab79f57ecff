"""The movie study's stimuli and responses files: TR clips, HRF-lag alignment, splits."""

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from encscale.contracts import read_responses, write_movie_stimuli
from encscale.data import cneuromod
from encscale.data.movies import aligned_rows, lagged_rows, prepare_movie_subject
from encscale.video.clips import encode_clips, read_clips, tr_clip_table, training_clip_starts
from encscale.video.decode import read_frames, write_video
from encscale.video.selection import select_movies
from encscale.video.vqvae import VQVAE, VQVAEConfig

TR = cneuromod.TR


def test_tr_clips_end_with_their_tr_and_start_inside_the_movie():
    table = tr_clip_table({"friends_s01e01a": 10 * TR + 0.2, "bourne01": 4 * TR}, TR, window_s=2.0)
    a = table[table["movie"] == "friends_s01e01a"]
    # TR 0 ends at 1.49 s: a 2 s clip would start before 0, so the first clip is TR 1's
    assert a["tr"].tolist() == list(range(1, 10))
    np.testing.assert_allclose(a["end_s"], (np.arange(1, 10) + 1) * TR)
    np.testing.assert_allclose(a["start_s"], (np.arange(1, 10) + 1) * TR - 2.0)
    assert table["movie"].iloc[0] == "bourne01"  # movies in name order


def test_hrf_lag_pairs_tr_t_with_the_clip_ending_at_t_minus_lag():
    index = {("m", j): 100 + j for j in range(1, 8)}  # clips of TRs 1…7 at rows 101…107
    ts, rows = aligned_rows(index, "m", n_samples=10, lag=3)
    # TR 3 would need clip 0 (none); TR 4 → clip 1 (row 101), …, TR 9 → clip 6 (row 106)
    assert ts.tolist() == [4, 5, 6, 7, 8, 9]
    assert rows.tolist() == [101, 102, 103, 104, 105, 106]
    ts, rows = aligned_rows(index, "m", n_samples=12, lag=0)
    assert ts.tolist() == [1, 2, 3, 4, 5, 6, 7] and rows.tolist() == list(range(101, 108))


def test_movie_selection_and_training_clips():
    names = ["friends_s01e01a", "friends_s01e01b", "friends_s01e02a", "bourne01"]
    assert select_movies(names, ["friends_*"], ["*e02*"]) == ["friends_s01e01a", "friends_s01e01b"]
    with pytest.raises(ValueError, match=r"'wolf\*' matches none"):
        select_movies(names, ["wolf*"])
    small = training_clip_starts({"a": 10.0, "b": 30.0}, 50, 2.0, seed=1)
    large = training_clip_starts({"a": 10.0, "b": 30.0}, 500, 2.0, seed=1)
    assert (large["movie"] == "b").mean() == pytest.approx(28 / 36, abs=0.06)
    limits = large["movie"].map({"a": 8.0, "b": 28.0})
    assert ((large["start_s"] >= 0) & (large["start_s"] <= limits)).all()
    assert len(small) == 50


def test_clips_of_a_table_are_read_and_encoded_in_its_row_order(tmp_path):
    """Rows of two movies, interleaved: each movie is read in one pass, yet every row gets
    its own clip (as read_frames reads it) and its own codes."""
    rng = np.random.default_rng(0)
    paths = {}
    for name in ("friends_s01e01a", "bourne01"):
        paths[name] = tmp_path / f"{name}.mkv"
        write_video(paths[name], rng.integers(0, 256, (40, 16, 16, 3), dtype=np.uint8), 8.0)
    table = pd.DataFrame(
        {
            "movie": ["bourne01", "friends_s01e01a", "bourne01", "friends_s01e01a", "bourne01"],
            "start_s": [3.5, 0.0, 0.25, 2.0, 0.25],
        }
    )
    got = read_clips(paths, table, 4, 8.0, 16)
    for row, (movie, start) in enumerate(zip(table["movie"], table["start_s"], strict=True)):
        expected = read_frames(paths[movie], start, start + 0.5, 8.0, 16)
        np.testing.assert_array_equal(got[row], expected.transpose(3, 0, 1, 2))
    torch.manual_seed(0)
    model = VQVAE(VQVAEConfig(channels=8, n_codes=16, code_dim=4, downsample=(2, 4, 4)))
    codes = encode_clips(model, paths, table, frames=4, fps=8.0, size=16, batch_size=2)
    np.testing.assert_array_equal(codes, model.encode(torch.from_numpy(got)).numpy())
    assert codes.shape == (5, 2, 4, 4) and codes.dtype == np.int16


def _write_fmri(path, runs):
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as h5:
        for key, data in runs.items():
            h5[key] = data


def test_responses_file_splits_by_movie_zscores_and_aligns(tmp_path):
    durations = {"friends_s01e01a": 8 * TR, "friends_s01e02a": 6 * TR}
    table = tr_clip_table(durations, TR, window_s=TR)  # one clip per TR from TR 0
    stimuli = tmp_path / "stimuli.h5"
    codes = np.arange(len(table) * 2, dtype=np.int16).reshape(len(table), 1, 1, 2)
    write_movie_stimuli(stimuli, table, codes, dict(tr=TR))
    rng = np.random.default_rng(0)
    run_a = rng.normal(size=(9, 5)).astype(np.float32)  # one TR longer than its movie
    run_b = rng.normal(size=(6, 5)).astype(np.float32)
    fmri = tmp_path / "sub-01.h5"
    _write_fmri(
        fmri,
        {
            "ses-001_task-s01e01a": run_a,
            "ses-002_task-s01e02a": run_b,
            "ses-003_task-s01e09a": run_b,
        },
    )  # a run of a movie not in the study
    out = tmp_path / "responses.h5"
    prepare_movie_subject(
        [fmri], stimuli, out, subject="sub-01", test_movies=["friends_s01e02a"], lag=2
    )
    with h5py.File(out) as h5:
        # train: movie a (rows 0…7, movies in name order); fMRI TR t ↔ clip row t − 2
        assert h5["train/tr"][()].tolist() == [2, 3, 4, 5, 6, 7, 8]
        assert h5["train/stimulus"][()].tolist() == [0, 1, 2, 3, 4, 5, 6]
        assert h5["test/tr"][()].tolist() == [2, 3, 4, 5]
        assert h5["test/stimulus"][()].tolist() == [8, 9, 10, 11]
        z = (run_a - run_a.mean(0)) / run_a.std(0)
        np.testing.assert_allclose(h5["train/responses"][()], z[2:], rtol=1e-5, atol=1e-6)
        assert np.isnan(h5["noise_ceiling"][()]).all() and h5["noise_ceiling"].shape == (5,)
        assert h5.attrs["lag"] == 2
    with h5py.File(stimuli) as h5:
        stim = pd.DataFrame({"movie": h5["movie"][()].astype(str), "end_s": h5["end_s"][()]})
    # fMRI TR t of the test movie ↔ the clip ending where TR t − 2 ends
    np.testing.assert_allclose(stim["end_s"].iloc[[8, 9, 10, 11]], (np.arange(2, 6) - 2 + 1) * TR)
    with pytest.raises(ValueError, match="no test runs"):
        prepare_movie_subject(
            [fmri],
            stimuli,
            tmp_path / "x.h5",
            subject="sub-01",
            test_movies=["friends_s09e01a"],
            lag=2,
        )
    assert not (tmp_path / "x.h5").exists()


def test_several_lags_and_a_window_pair_each_tr_with_its_lagged_clips():
    index = {("m", j): 100 + j for j in range(1, 8)}  # clips of TRs 1…7 at rows 101…107
    ts, rows = lagged_rows(index, "m", n_samples=11, lags=[2, 3], window_trs=2)
    # TR t needs clips t − 3 … t − 2 and t − 4 … t − 3: all from TR 1 on, so t ≥ 5;
    # t = 10 needs clip 8 (none)
    assert ts.tolist() == [5, 6, 7, 8, 9]
    assert rows.shape == (5, 2, 2)
    assert rows[0].tolist() == [[102, 103], [101, 102]]  # oldest first, per lag
    assert rows[:, 0, 1].tolist() == [103, 104, 105, 106, 107]
    # one lag, one clip: the rows of aligned_rows
    ts1, rows1 = lagged_rows(index, "m", n_samples=10, lags=[3])
    ts0, rows0 = aligned_rows(index, "m", n_samples=10, lag=3)
    assert ts1.tolist() == ts0.tolist() and rows1[:, 0, 0].tolist() == rows0.tolist()
    for lags, window in (([], 1), ([2, 2], 1), ([-1], 1), ([1.5], 1), ([2], 0)):
        with pytest.raises(ValueError, match="lags must be|window_trs must be"):
            lagged_rows(index, "m", 10, lags, window)


def test_responses_file_with_several_lags_keeps_each_samples_lagged_rows(tmp_path):
    durations = {"friends_s01e01a": 8 * TR, "friends_s01e02a": 6 * TR}
    table = tr_clip_table(durations, TR, window_s=TR)
    stimuli = tmp_path / "stimuli.h5"
    codes = np.zeros((len(table), 1, 1, 2), dtype=np.int16)
    write_movie_stimuli(stimuli, table, codes, dict(tr=TR))
    rng = np.random.default_rng(0)
    runs = {
        "ses-001_task-s01e01a": rng.normal(size=(9, 5)).astype(np.float32),
        "ses-002_task-s01e02a": rng.normal(size=(6, 5)).astype(np.float32),
    }
    fmri = tmp_path / "sub-01.h5"
    _write_fmri(fmri, runs)
    paths = {}
    for name, lag, window in (("int", 2, 1), ("list", [2], 1), ("lags", [1, 2], 2)):
        paths[name] = tmp_path / f"{name}.h5"
        prepare_movie_subject(
            [fmri],
            stimuli,
            paths[name],
            subject="sub-01",
            test_movies=["friends_s01e02a"],
            lag=lag,
            window_trs=window,
        )
    with h5py.File(paths["int"]) as a, h5py.File(paths["list"]) as b:
        # [lag] is the single-lag route: the same datasets, no lagged rows
        assert sorted(a["train"]) == sorted(b["train"]) == ["responses", "run", "stimulus", "tr"]
        for key in ("train/responses", "train/stimulus", "train/tr", "test/stimulus"):
            np.testing.assert_array_equal(a[key][()], b[key][()])
        assert a.attrs["lag"] == b.attrs["lag"] == 2 and list(b.attrs["lags"]) == [2]
    with h5py.File(paths["lags"]) as h5:
        # lags 1 and 2, two TR clips each: TR t needs clips t − 3 … t − 1, so t ≥ 3
        assert h5["train/tr"][()].tolist() == [3, 4, 5, 6, 7, 8]
        lagged = h5["train/lagged"][()]
        assert lagged.shape == (6, 2, 2)
        assert lagged[0].tolist() == [[1, 2], [0, 1]]  # movie a's rows 0…7 are its TRs 0…7
        np.testing.assert_array_equal(h5["train/stimulus"][()], lagged[:, 0, 1])
        assert h5["test/lagged"][()][:, 0, 1].tolist() == [8 + t - 1 for t in (3, 4, 5)]
        assert list(h5.attrs["lags"]) == [1, 2] and h5.attrs["window_trs"] == 2
        assert "lag" not in h5.attrs
    resp = read_responses(paths["lags"], ["train", "test"])
    np.testing.assert_array_equal(resp.train.lagged, lagged)
