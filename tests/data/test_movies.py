"""The movie study's stimuli and responses files: TR clips, HRF-lag alignment, splits."""

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from encscale.contracts import write_movie_stimuli
from encscale.data import cneuromod
from encscale.data.movies import aligned_rows, prepare_movie_subject
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
