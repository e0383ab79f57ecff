"""The Algonauts 2023 dataset: noise ceiling and score, reading a download, the submission."""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pytest
import scipy.io
from algonauts_download import PARAMS, download_from_simulation
from PIL import Image

from encscale.data import algonauts, nsd
from encscale.encoding.scores import score_fit
from encscale.metrics import (
    algonauts_noise_ceiling,
    algonauts_score,
    noise_ceiling,
    noise_ceiling_k,
)

SUBJECT = "subj01"
N_CHALLENGE = 8
HOLDOUT, SEED = 0.2, 1


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> dict:
    """A simulated NSD subject, prepared, and a miniature download made from it."""
    base = tmp_path_factory.mktemp("algonauts")
    expected = download_from_simulation(
        base,
        PARAMS,
        SUBJECT,
        base / "download",
        n_challenge=N_CHALLENGE,
        fsaverage_root=base / "nsd",
    )
    return {**expected, "root": base / "download", "base": base}


@pytest.fixture(scope="module")
def prepared(source) -> dict:
    """The download read into stimuli and responses files."""
    out = source["base"] / "out"
    algonauts.prepare_stimuli(source["root"], [SUBJECT], out / "stimuli.h5")
    with pytest.warns(UserWarning, match="assumed to average 3 trials"):
        algonauts.prepare_subject(
            source["root"],
            SUBJECT,
            out / "stimuli.h5",
            out / "responses.h5",
            holdout=HOLDOUT,
            seed=SEED,
            ncsnr=source["ncsnr_paths"],
            n_repeats=PARAMS["n_repeats"],  # the simulated design's sessions are not NSD's
        )
    return {"stimuli": out / "stimuli.h5", "responses": out / "responses.h5"}


def read_all(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    """Every dataset of an HDF5 file by path, and its attributes."""
    arrays = {}
    with h5py.File(path, "r") as h5:
        h5.visititems(
            lambda k, v: arrays.__setitem__(k, v[()]) if isinstance(v, h5py.Dataset) else None
        )
        return arrays, dict(h5.attrs)


# --- 1. the challenge's noise ceiling and score -------------------------------------------


def test_noise_ceiling_by_hand():
    # repeats 3, 3, 2, 1: k = (2/3 + 1/2 + 1/1) / 4 = 13/24
    assert noise_ceiling_k([3, 3, 2, 1]) == pytest.approx(13 / 24)
    nc = algonauts_noise_ceiling(np.array([0.0, 1.0, 2.0, np.nan]), [3, 3, 2, 1])
    # 100·1/(1 + 13/24) = 2400/37; 100·4/(4 + 13/24) = 9600/109
    np.testing.assert_allclose(nc[:3], [0.0, 2400 / 37, 9600 / 109], rtol=1e-12)
    assert np.isnan(nc[3])
    # all images with 3 repeats: k = 1/3, NSD's formula with n = 3
    assert noise_ceiling_k([3] * 7) == pytest.approx(1 / 3)
    snr = np.array([0.3, 1.0, 2.5])
    np.testing.assert_allclose(algonauts_noise_ceiling(snr, [3] * 7), noise_ceiling(snr, 3))
    with pytest.raises(ValueError, match="at least 1"):
        noise_ceiling_k([3, 0])
    with pytest.raises(ValueError, match="non-empty"):
        noise_ceiling_k([])


def test_score_by_hand():
    r = np.array([-0.2, 0.3, 0.9, 0.4, 0.5, 0.3, 0.0, np.nan])
    nc = np.array([50.0, 36.0, 64.0, 100.0, np.nan, 0.0, 0.0, 50.0])
    # 0 (r < 0); 0.09/0.36 = 25 %; 0.81/0.64 capped at 100; 0.16/1 = 16 %; NaN ceiling;
    # a zero ceiling: 100 for r > 0, 0 for r = 0 (the challenge's 1e-14 floor); NaN r
    expected = [0.0, 25.0, 100.0, 16.0, np.nan, 100.0, 0.0, np.nan]
    np.testing.assert_allclose(algonauts_score(r, nc), expected, rtol=1e-12)


def test_score_fit_without_ceiling_is_nan(tmp_path):
    fit, resp = tmp_path / "fit.h5", tmp_path / "resp.h5"
    with h5py.File(fit, "w") as f:
        f["test_r"] = np.array([0.1, 0.3], dtype=np.float32)
        f.attrs.update(subject=SUBJECT, model="m", n_params=1, size=10, seed=0)
    with h5py.File(resp, "w") as f:
        f["noise_ceiling"] = np.full(2, np.nan, dtype=np.float32)
    row = score_fit(fit, resp).iloc[0]
    assert row["r"] == pytest.approx(0.2)
    assert np.isnan(row["r_norm"]) and np.isnan(row["nn_r2"])


# --- 2. reading a download ------------------------------------------------------------------


def test_paths_follow_the_challenge_layout(source):
    root, subject_dir = source["root"], source["subject_dir"]
    for hemi in ("lh", "rh"):
        assert Path(algonauts.fmri_path(root, SUBJECT, hemi)).is_file()
        assert Path(algonauts.roi_mask_path(root, SUBJECT, hemi, "streams")).is_file()
        assert Path(algonauts.fsaverage_mask_path(root, SUBJECT, hemi)).is_file()
    assert Path(algonauts.roi_mapping_path(root, SUBJECT, "floc-faces")).is_file()
    assert algonauts.images_dir(root, SUBJECT, "test") == str(
        subject_dir / "test_split/test_images"
    )
    for hemi, path in zip(("lh", "rh"), source["ncsnr_paths"], strict=True):
        assert nsd.fsaverage_ncsnr_path(source["base"] / "nsd", SUBJECT, hemi) == path
    files = algonauts.image_files(root, SUBJECT, "test")
    assert [index for index, _, _ in files] == list(range(1, N_CHALLENGE + 1))
    assert [nsd_id for _, nsd_id, _ in files] == list(source["challenge_ids"])


def test_stimuli_round_trip(source, prepared):
    ids = np.union1d(source["train_ids"], source["challenge_ids"])
    with h5py.File(prepared["stimuli"], "r") as h5, h5py.File(source["nsd_stimuli"]) as src:
        np.testing.assert_array_equal(h5["ids"][()], ids)
        side = PARAMS["image_size"]
        assert h5["images"].dtype == np.uint8 and h5["images"].chunks == (1, side, side, 3)
        rows = np.searchsorted(src["ids"][()], ids)
        np.testing.assert_array_equal(h5["images"][()], src["images"][()][rows])


def test_responses_round_trip(source, prepared):
    r, attrs = read_all(prepared["responses"])
    with h5py.File(prepared["stimuli"], "r") as h5:
        ids = h5["ids"][()]
    n_train, n_vertices = source["train_responses"].shape
    n_test = round(HOLDOUT * n_train)

    train_ids, test_ids = ids[r["train/stimulus"]], ids[r["test/stimulus"]]
    assert r["test/stimulus"].size == n_test and r["train/stimulus"].size == n_train - n_test
    np.testing.assert_array_equal(np.sort(np.r_[train_ids, test_ids]), source["train_ids"])
    for split, split_ids in (("train", train_ids), ("test", test_ids)):
        assert np.all(np.diff(r[f"{split}/stimulus"]) > 0)
        source_rows = np.searchsorted(source["train_ids"], split_ids)
        assert r[f"{split}/responses"].dtype == np.float32
        np.testing.assert_array_equal(
            r[f"{split}/responses"], source["train_responses"][source_rows]
        )
        assert r[f"{split}/n_repeats"].dtype == np.int32 and np.all(r[f"{split}/n_repeats"] == 3)

    np.testing.assert_array_equal(ids[r["challenge/stimulus"]], source["challenge_ids"])
    assert r["challenge/stimulus"].dtype == np.int64
    assert np.bincount(r["hemisphere"]).tolist() == [source["n_lh"], source["n_rh"]]
    np.testing.assert_array_equal(
        r["vertex"], np.r_[np.arange(source["n_lh"]), np.arange(source["n_rh"])]
    )
    assert {k for k in r if k.startswith("rois/")} == {f"rois/{k}" for k in source["rois"]}
    for key, mask in source["rois"].items():
        np.testing.assert_array_equal(r[f"rois/{key}"], mask, err_msg=key)

    np.testing.assert_array_equal(r["ncsnr"], source["ncsnr"])
    assert r["noise_ceiling"].shape == (n_vertices,) and r["noise_ceiling"].dtype == np.float32
    np.testing.assert_allclose(
        r["noise_ceiling"], algonauts_noise_ceiling(source["ncsnr"], [3] * n_test), rtol=1e-6
    )
    # the NSD preparation's ceiling (3 repeats per test image) is the same formula
    np.testing.assert_allclose(r["noise_ceiling"], source["noise_ceiling"], rtol=1e-5)
    assert attrs["subject"] == SUBJECT and attrs["dataset"] == "algonauts2023"
    assert attrs["holdout"] == HOLDOUT and attrs["seed"] == SEED
    assert attrs["noise_ceiling_k"] == pytest.approx(1 / 3)
    assert (attrs["n_vertices_lh"], attrs["n_vertices_rh"]) == (source["n_lh"], source["n_rh"])


def test_holdout_is_seeded():
    a, b, c = (algonauts.holdout_rows(50, 0.1, s) for s in (0, 0, 1))
    assert a.sum() == 5 and np.array_equal(a, b) and not np.array_equal(a, c)
    assert algonauts.holdout_rows(50, 0.001, 0).sum() == 1
    with pytest.raises(ValueError, match="none for training"):
        algonauts.holdout_rows(1, 0.5, 0)


def write_design(path: Path, subject: str, ids: dict[str, np.ndarray], seed: int = 0) -> Path:
    """An NSD-shaped design file (30,000 trials, 8 × 10,000 ``subjectim``) in which
    ``subject``'s images ``ids["<t>_<w>"]`` (0-based NSD ids) have t trials in its released
    sessions (all completed but the last three) and w in the withheld ones; other images
    fill the rest of the sessions, about 3 trials each."""
    rng = np.random.default_rng(seed)
    released = algonauts.TRIALS_PER_SESSION * (nsd.SESSIONS[subject] - 3)
    planned = {key: (int(key[0]), int(key[2])) for key in ids}
    chosen = np.concatenate(list(ids.values()))
    others = iter(np.setdiff1d(np.arange(73000), chosen))
    before = [i for k, (t, _) in planned.items() for i in ids[k] for _ in range(t)]
    after = [i for k, (_, w) in planned.items() for i in ids[k] for _ in range(w)]
    for trials, n_trials in ((before, released), (after, 30000 - released)):
        while len(trials) < n_trials:  # a filler image, 3 trials (the last one up to 5)
            image = next(others)
            trials += [image] * (n_trials - len(trials) if n_trials - len(trials) < 6 else 3)
    images = list(dict.fromkeys([*chosen, *before, *after]))
    row = np.array(images + [next(others) for _ in range(10000 - len(images))])
    position = {image: i + 1 for i, image in enumerate(row)}  # 1-based, as NSD stores them
    order = [position[i] for i in rng.permutation(before)]
    order += [position[i] for i in rng.permutation(after)]
    subjectim = np.tile(np.arange(1, 10001), (8, 1))
    subjectim[nsd.subject_index(subject)] = row + 1
    scipy.io.savemat(
        path,
        {
            "masterordering": np.array(order)[None, :],
            "subjectim": subjectim,
            "sharedix": np.arange(1, 1001),
        },
    )
    return path


def test_trial_counts_of_the_released_sessions_from_the_design(tmp_path):
    """subj04 completed 30 sessions: the challenge's rows average the trials of the first 27."""
    ids = {"3_0": np.arange(100, 110), "2_1": np.arange(200, 230), "1_2": np.arange(300, 320)}
    ids["0_3"] = np.arange(400, 405)  # shown in the withheld sessions only: a test image
    path = write_design(tmp_path / "nsd_expdesign.mat", "subj04", ids)
    design = nsd.read_expdesign(path)
    images = np.r_[ids["1_2"], ids["3_0"], ids["2_1"]]
    counts = algonauts.training_trial_counts(design, "subj04", images)
    np.testing.assert_array_equal(counts, np.repeat([1, 3, 2], [20, 10, 30]))
    assert noise_ceiling_k(counts) == pytest.approx((20 / 1 + 10 / 3 + 30 / 2) / 60)
    missing = r"nsd-00400 has no trial in sessions 1–27 .*\(5 such images\)"
    with pytest.raises(ValueError, match=missing):
        algonauts.training_trial_counts(design, "subj04", np.r_[images, ids["0_3"]])
    with pytest.raises(ValueError, match="subj01's 37 training sessions need 27750"):
        short = {k: v[None, :22000] if k == "masterordering" else v for k, v in design.items()}
        algonauts.training_trial_counts({**design, **short}, "subj01", images)


def test_held_out_ceiling_uses_the_counted_trials(source, prepared, tmp_path):
    """prepare_subject with the design: each row's n_repeats is its count, and the ceiling's
    k is mean(1/n) over the held-out rows (not 1/3)."""
    train_ids = source["train_ids"]
    thirds = np.array_split(train_ids, 3)
    ids = {"1_2": thirds[0], "2_1": thirds[1], "3_0": thirds[2]}
    design = write_design(tmp_path / "nsd_expdesign.mat", SUBJECT, ids)
    out = tmp_path / "responses.h5"
    algonauts.prepare_subject(
        source["root"],
        SUBJECT,
        prepared["stimuli"],
        out,
        holdout=HOLDOUT,
        seed=SEED,
        ncsnr=source["ncsnr_paths"],
        design=design,
    )
    r, attrs = read_all(out)
    with h5py.File(prepared["stimuli"], "r") as h5:
        stimulus_ids = h5["ids"][()]
    expected = {int(i): n for n, part in enumerate(thirds, start=1) for i in part}
    for split in ("train", "test"):
        split_ids = stimulus_ids[r[f"{split}/stimulus"]]
        assert r[f"{split}/n_repeats"].tolist() == [expected[int(i)] for i in split_ids]
    held_out = r["test/n_repeats"]
    assert len(set(held_out.tolist())) > 1
    assert attrs["noise_ceiling_k"] == pytest.approx(np.mean(1.0 / held_out))
    np.testing.assert_allclose(
        r["noise_ceiling"], algonauts_noise_ceiling(source["ncsnr"], held_out), rtol=1e-6
    )
    with pytest.raises(ValueError, match="needs each held-out image's trial count"):
        algonauts.prepare_subject(
            source["root"], SUBJECT, prepared["stimuli"], out, ncsnr=source["ncsnr_paths"]
        )


def test_without_ncsnr_the_ceiling_is_nan(source, prepared, tmp_path, caplog):
    out = tmp_path / "responses.h5"
    with caplog.at_level(logging.WARNING, logger="encscale"):
        algonauts.prepare_subject(
            source["root"], SUBJECT, prepared["stimuli"], out, rois=["streams"]
        )
    assert "noise-normalised scores will be NaN" in caplog.text
    with h5py.File(out, "r") as h5:
        assert np.isnan(h5["ncsnr"][()]).all() and np.isnan(h5["noise_ceiling"][()]).all()
        assert list(h5["rois"]) == ["streams"]


# --- 3. the submission ----------------------------------------------------------------------


def write_fit(path: Path, pred: np.ndarray) -> Path:
    with h5py.File(path, "w") as f:
        f["challenge_pred"] = pred
        f.attrs["subject"] = SUBJECT
    return path


def test_submission_is_the_mean_split_by_hemisphere(source, prepared, tmp_path):
    rng = np.random.default_rng(0)
    shape = (N_CHALLENGE, source["n_lh"] + source["n_rh"])
    preds = [rng.normal(size=shape).astype(np.float32) for _ in range(2)]
    fits = [write_fit(tmp_path / f"fit{i}.h5", p) for i, p in enumerate(preds)]
    out = tmp_path / "submission" / SUBJECT

    algonauts.write_submission(fits, prepared["responses"], out)
    mean = ((preds[0].astype(np.float64) + preds[1]) / 2).astype(np.float32)
    lh, rh = np.load(out / "lh_pred_test.npy"), np.load(out / "rh_pred_test.npy")
    assert lh.dtype == rh.dtype == np.float32
    assert lh.shape == (N_CHALLENGE, source["n_lh"]) and rh.shape == (N_CHALLENGE, source["n_rh"])
    np.testing.assert_array_equal(lh, mean[:, : source["n_lh"]])
    np.testing.assert_array_equal(rh, mean[:, source["n_lh"] :])

    algonauts.write_submission(fits[:1], prepared["responses"], out)
    np.testing.assert_array_equal(np.load(out / "lh_pred_test.npy"), preds[0][:, : source["n_lh"]])


def test_submission_rejects_bad_fits(source, prepared, tmp_path):
    shape = (N_CHALLENGE, source["n_lh"] + source["n_rh"])
    good = write_fit(tmp_path / "good.h5", np.zeros(shape, dtype=np.float32))
    short = write_fit(tmp_path / "short.h5", np.zeros((shape[0] - 1, shape[1]), np.float32))
    with pytest.raises(ValueError, match=r"short\.h5.*shape"):
        algonauts.write_submission([good, short], prepared["responses"], tmp_path / "out")
    bad = np.zeros(shape, dtype=np.float32)
    bad[0, 0] = np.nan
    nan = write_fit(tmp_path / "nan.h5", bad)
    with pytest.raises(ValueError, match=r"nan\.h5.*non-finite"):
        algonauts.write_submission([good, nan], prepared["responses"], tmp_path / "out")
    assert not (tmp_path / "out").exists()


# --- 4. bad downloads -----------------------------------------------------------------------


@pytest.fixture
def download(source, tmp_path) -> Path:
    """A copy of the miniature download that a test may break."""
    shutil.copytree(source["subject_dir"], tmp_path / "download" / SUBJECT)
    return tmp_path / "download"


def prepare_copy(root: Path, prepared: dict, **kwargs) -> Path:
    out = root.parent / "responses.h5"
    algonauts.prepare_subject(root, SUBJECT, prepared["stimuli"], out, **kwargs)
    return out


def test_bad_image_name(download, prepared):
    folder = Path(algonauts.images_dir(download, SUBJECT, "train"))
    first = sorted(folder.iterdir())[0]
    first.rename(folder / "train-0001_nsd-7.png")
    with pytest.raises(ValueError, match=r"train-0001_nsd-7\.png"):
        prepare_copy(download, prepared)
    assert not (download.parent / "responses.h5").exists()


def test_gap_in_image_indices(download, prepared):
    folder = Path(algonauts.images_dir(download, SUBJECT, "test"))
    last = sorted(folder.iterdir())[-1]
    last.rename(folder / last.name.replace(f"test-{N_CHALLENGE:04d}", "test-0099"))
    with pytest.raises(ValueError, match=re.escape(str(folder)) + ".*without gaps"):
        algonauts.image_files(download, SUBJECT, "test")


def test_fmri_rows_differ_from_images(download, prepared):
    path = algonauts.fmri_path(download, SUBJECT, "lh")
    np.save(path, np.load(path)[:-1])
    with pytest.raises(ValueError, match=r"lh_training_fmri\.npy.*rows"):
        prepare_copy(download, prepared)


def test_nan_in_fmri(download, prepared):
    path = algonauts.fmri_path(download, SUBJECT, "rh")
    fmri = np.load(path)
    fmri[3, 2] = np.nan
    np.save(path, fmri)
    with pytest.raises(ValueError, match=r"rh_training_fmri\.npy.*non-finite"):
        prepare_copy(download, prepared)


def test_roi_label_missing_from_mapping(download, prepared):
    path = algonauts.roi_mask_path(download, SUBJECT, "rh", "floc-faces")
    labels = np.load(path)
    labels[0] = 99
    np.save(path, labels)
    with pytest.raises(ValueError, match=r"rh\.floc-faces_challenge_space\.npy.*label 99"):
        prepare_copy(download, prepared)


def test_fsaverage_mask_count_differs(source, download, prepared):
    path = algonauts.fsaverage_mask_path(download, SUBJECT, "lh")
    mask = np.load(path)
    mask[np.flatnonzero(mask == 0)[0]] = 1
    np.save(path, mask)
    with pytest.raises(ValueError, match=r"all-vertices_fsaverage_space\.npy.*lh_training_fmri"):
        prepare_copy(download, prepared, ncsnr=source["ncsnr_paths"], n_repeats=3)


def test_ncsnr_surface_length_differs(source, download, prepared):
    n_surface = np.load(algonauts.fsaverage_mask_path(download, SUBJECT, "lh")).size
    ncsnr = download.parent / "lh.ncsnr.mgh"
    nib.save(nib.MGHImage(np.ones((n_surface + 1, 1, 1), np.float32), np.eye(4)), ncsnr)
    with pytest.raises(ValueError, match=r"lh\.ncsnr\.mgh.*vertices"):
        prepare_copy(download, prepared, ncsnr=(ncsnr, source["ncsnr_paths"][1]), n_repeats=3)


def test_stimuli_of_two_subjects_must_agree(download, tmp_path):
    shutil.copytree(download / SUBJECT, download / "subj02")
    algonauts.prepare_stimuli(download, [SUBJECT, "subj02"], tmp_path / "same.h5")
    folder = Path(algonauts.images_dir(download, "subj02", "train"))
    path = sorted(folder.iterdir())[4]
    pixels = np.asarray(Image.open(path)).copy()
    pixels[0, 0] ^= 1
    Image.fromarray(pixels).save(path)
    with pytest.raises(ValueError, match=re.escape(path.name) + ".*differ.*" + SUBJECT):
        algonauts.prepare_stimuli(download, [SUBJECT, "subj02"], tmp_path / "out.h5")
    Image.fromarray(np.zeros((20, 32, 3), np.uint8)).save(path)
    with pytest.raises(ValueError, match=re.escape(path.name) + ".*image is"):
        algonauts.prepare_stimuli(download, ["subj02"], tmp_path / "out.h5")
    assert not (tmp_path / "out.h5").exists()
