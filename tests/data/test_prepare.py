"""The NSD simulator and the preparation that reads its (NSD's) layout."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pytest
import scipy.io

from conftest import SIM_PARAMS as PARAMS
from conftest import TINY_SIM_PARAMS as TINY
from encscale.contracts import image_dataset
from encscale.data import nsd
from encscale.data.prepare import prepare_stimuli, prepare_subject
from encscale.metrics import ceiling_r, pearson_r
from encscale.simulate.nsd import ATLAS_LABELS, DEPTH_OF_STREAM, simulate_nsd, truth_path

SUBJECTS = ["subj01", "subj02"]
N_TRIALS = (PARAMS["n_shared"] + PARAMS["n_unique"]) * PARAMS["n_repeats"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    """Simulate once, prepare the stimuli and subj01 once."""
    base = tmp_path_factory.mktemp("nsd")
    raw, out = base / "raw", base / "results"
    simulate_nsd(raw, PARAMS)
    prepare_stimuli(raw, SUBJECTS, out / "stimuli.h5")
    prepare_subject(raw, "subj01", out / "stimuli.h5", out / "responses/subj01.h5")
    return {"raw": raw, "stimuli": out / "stimuli.h5", "responses": out / "responses/subj01.h5"}


def read_all(path: Path) -> dict[str, np.ndarray]:
    """Every dataset of an HDF5 file, by path."""
    arrays = {}
    with h5py.File(path, "r") as h5:
        h5.visititems(
            lambda k, v: arrays.__setitem__(k, v[()]) if isinstance(v, h5py.Dataset) else None
        )
    return arrays


# --- 1. layout ----------------------------------------------------------------------------


def test_layout(data):
    raw = data["raw"]
    n_images = PARAMS["n_shared"] + PARAMS["n_subjects"] * PARAMS["n_unique"]
    with h5py.File(nsd.stimuli_path(raw), "r") as h5:
        assert h5["imgBrick"].dtype == np.uint8
        assert h5["imgBrick"].shape == (n_images, 32, 32, 3)
        assert h5["imgBrick"][()].std(axis=(1, 2, 3)).min() > 0  # no blank image

    design = nsd.read_expdesign(nsd.expdesign_path(raw))
    per_subject = PARAMS["n_shared"] + PARAMS["n_unique"]
    assert design["subjectim"].shape == (2, per_subject)
    assert design["masterordering"].min() == 1 and design["masterordering"].max() == per_subject
    assert np.all(np.bincount(design["masterordering"])[1:] == PARAMS["n_repeats"])
    assert sorted(np.unique(design["subjectim"])) == list(range(1, n_images + 1))
    for row in design["subjectim"]:
        np.testing.assert_array_equal(row[: PARAMS["n_shared"]], design["sharedix"])
    for subject in SUBJECTS:
        shown = nsd.trial_image_ids(design, subject)
        assert shown.size == N_TRIALS
        assert np.all(np.unique(shown, return_counts=True)[1] == PARAMS["n_repeats"])

    sizes = [200, 200, 200, 200, 150]
    for subject in SUBJECTS:
        assert nsd.session_numbers(raw, subject) == [1, 2, 3, 4, 5]
        for session, size in enumerate(sizes, start=1):
            img = nib.load(nsd.betas_path(raw, subject, session))
            assert img.get_data_dtype() == np.int16
            assert img.shape == (14, 14, 12, size)
            np.testing.assert_allclose(img.header.get_zooms()[:3], 1.8)
        brain = np.asanyarray(nib.load(nsd.brainmask_path(raw, subject)).dataobj)
        assert set(np.unique(brain)) == {0, 1}
        betas = np.asanyarray(nib.load(nsd.betas_path(raw, subject, 1)).dataobj)
        assert not betas[brain == 0].any()
        ncsnr = np.asanyarray(nib.load(nsd.ncsnr_path(raw, subject)).dataobj)
        assert ncsnr.dtype == np.float32 and np.isnan(ncsnr[brain == 0]).all()  # as NSD's
        general = np.asanyarray(nib.load(nsd.roi_path(raw, subject, "nsdgeneral")).dataobj)
        assert set(np.unique(general[brain == 0])) == {-1}
        assert set(np.unique(general[brain == 1])) == {0, 1}
        for atlas, labels in ATLAS_LABELS.items():
            volume = np.asanyarray(nib.load(nsd.roi_path(raw, subject, atlas)).dataobj)
            assert volume.shape == brain.shape and volume.min() == -1
            table = nsd.read_ctab(nsd.ctab_path(raw, subject, atlas))
            assert table == {0: "Unknown", **labels}
        streams = np.asanyarray(nib.load(nsd.roi_path(raw, subject, "streams")).dataobj)
        assert np.all(streams[general == 1] > 0) and np.all(streams[general != 1] <= 0)
        with h5py.File(truth_path(raw, subject), "r") as h5:
            assert h5["depth"].shape == brain.shape and h5["rf_center"].shape == (*brain.shape, 2)
            assert set(np.unique(h5["depth"][()][general == 1])) == {1, 2, 3, 4}


# --- 2. determinism -----------------------------------------------------------------------


def test_same_seed_same_arrays_other_seed_differs(tmp_path):
    for name, params in (("a", TINY), ("b", TINY), ("c", {**TINY, "seed": TINY["seed"] + 1})):
        simulate_nsd(tmp_path / name, params)

    def arrays(name: str) -> dict[str, np.ndarray]:
        root = tmp_path / name
        with h5py.File(nsd.stimuli_path(root), "r") as h5:
            brick = h5["imgBrick"][()]
        return {
            "imgBrick": brick,
            "betas": np.asanyarray(nib.load(nsd.betas_path(root, "subj01", 1)).dataobj),
            "ncsnr": np.asanyarray(nib.load(nsd.ncsnr_path(root, "subj01")).dataobj),
            **read_all(truth_path(root, "subj01")),
        }

    a, b, c = arrays("a"), arrays("b"), arrays("c")
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    for key in ("imgBrick", "betas", "ncsnr"):
        assert not np.array_equal(a[key], c[key]), key


def test_bad_params(tmp_path):
    with pytest.raises(ValueError, match="unknown keys.*n_subject"):
        simulate_nsd(tmp_path, {**TINY, "n_subject": 1})
    with pytest.raises(ValueError, match="n_repeats"):
        simulate_nsd(tmp_path, {**TINY, "n_repeats": 1})


# --- 3. noise ceiling: the project's acceptance point ---------------------------------------


def test_noise_ceiling_recovers_planted_ceiling(data):
    with h5py.File(data["responses"], "r") as h5, h5py.File(truth_path(data["raw"], "subj01")) as t:
        ijk = tuple(h5["voxel_ijk"][()].T)
        estimated = ceiling_r(h5["noise_ceiling"][()])
        planted = t["noise_ceiling_r"][()][ijk]
        assert h5.attrs["noise_ceiling_n"] == PARAMS["n_repeats"]
    assert estimated.size > 300
    assert np.abs(estimated - planted).mean() < 0.02
    assert np.corrcoef(estimated, planted)[0, 1] > 0.9


# --- 4. prepared responses ----------------------------------------------------------------


def test_prepared_stimuli(data):
    design = nsd.read_expdesign(nsd.expdesign_path(data["raw"]))
    with h5py.File(data["stimuli"], "r") as h5, h5py.File(nsd.stimuli_path(data["raw"])) as src:
        ids = h5["ids"][()]
        np.testing.assert_array_equal(ids, np.unique(design["subjectim"] - 1))
        assert h5["images"].chunks == (1, 32, 32, 3)
        np.testing.assert_array_equal(h5["images"][()], src["imgBrick"][()][ids])


def test_stimuli_view_reads_the_same_images_and_refuses_a_moved_source(data, tmp_path):
    """prepare.images view: a virtual dataset of the source's rows, the copy's pixels."""
    raw = tmp_path / "raw"
    shutil.copytree(data["raw"], raw)
    one = tmp_path / "one.h5"  # subj02 alone: its ids are runs with gaps, one mapping each
    prepare_stimuli(raw, ["subj02"], one, view=True)
    prepare_stimuli(raw, ["subj02"], tmp_path / "copy.h5")
    with h5py.File(one) as view, h5py.File(tmp_path / "copy.h5") as copy:
        assert view["images"].is_virtual and not copy["images"].is_virtual
        assert len(view["images"].virtual_sources()) > 1
        np.testing.assert_array_equal(view["ids"][()], copy["ids"][()])
        np.testing.assert_array_equal(image_dataset(view)[()], copy["images"][()])
        rows = [5, 2, 17]
        np.testing.assert_array_equal(view["images"][sorted(rows)], copy["images"][sorted(rows)])
    prepare_stimuli(raw, SUBJECTS, tmp_path / "all.h5", view=True)
    assert (tmp_path / "all.h5").stat().st_size < 20_000 < (tmp_path / "copy.h5").stat().st_size
    np.testing.assert_array_equal(
        read_all(tmp_path / "all.h5")["images"], read_all(data["stimuli"])["images"]
    )
    Path(nsd.stimuli_path(raw)).rename(tmp_path / "moved.hdf5")
    with (
        h5py.File(one) as view,
        pytest.raises(
            FileNotFoundError,
            match="one.h5: its images are a view of .*nsd_stimuli.hdf5, which is missing",
        ),
    ):
        image_dataset(view)


def test_prepared_responses(data):
    r = read_all(data["responses"])
    with h5py.File(data["responses"], "r") as h5:
        attrs = dict(h5.attrs)
    with h5py.File(data["stimuli"], "r") as h5:
        ids = h5["ids"][()]
    design = nsd.read_expdesign(nsd.expdesign_path(data["raw"]))
    assert attrs["subject"] == "subj01" and attrs["n_sessions"] == 5
    assert attrs["beta_version"] == nsd.BETA_VERSION

    train, test = r["train/stimulus"], r["test/stimulus"]
    assert not set(train) & set(test)
    assert set(ids[test]) == set(design["sharedix"] - 1)
    assert train.size == PARAMS["n_unique"] and np.all(np.diff(train) > 0)
    assert np.all(r["train/n_repeats"] == PARAMS["n_repeats"])

    n_voxels = r["voxel_ijk"].shape[0]
    assert r["mask"].dtype == bool and r["mask"].sum() == n_voxels
    np.testing.assert_array_equal(r["voxel_ijk"], np.argwhere(r["mask"]))
    general = np.asanyarray(nib.load(nsd.roi_path(data["raw"], "subj01", "nsdgeneral")).dataobj)
    np.testing.assert_array_equal(r["mask"], general == 1)
    np.testing.assert_allclose(np.diag(r["affine"])[:3], 1.8)
    for split in ("train", "test"):
        assert r[f"{split}/responses"].dtype == np.float32
        assert r[f"{split}/responses"].shape == (r[f"{split}/stimulus"].size, n_voxels)
        assert np.isfinite(r[f"{split}/responses"]).all()
    assert r["noise_ceiling"].shape == r["ncsnr"].shape == (n_voxels,)
    assert np.all((r["noise_ceiling"] >= 0) & (r["noise_ceiling"] <= 100))

    mean = r["train/responses"].mean(axis=0)
    assert np.abs(mean).mean() < 0.06 and np.abs(mean).max() < 0.3

    streams = np.stack([r[f"rois/streams/{name}"] for name in DEPTH_OF_STREAM])
    assert np.all(streams.sum(axis=0) == 1)  # every voxel in exactly one stream
    for atlas, labels in ATLAS_LABELS.items():
        if atlas != "nsdgeneral":
            assert {f"rois/{atlas}/{name}" for name in labels.values()} <= r.keys()


def test_prepare_without_mask_roi_keeps_brain(data, tmp_path):
    out = tmp_path / "brain.h5"
    prepare_subject(
        data["raw"], "subj01", data["stimuli"], out, atlases=("streams",), mask_roi=None
    )
    brain = np.asanyarray(nib.load(nsd.brainmask_path(data["raw"], "subj01")).dataobj)
    with h5py.File(out, "r") as h5:
        np.testing.assert_array_equal(h5["mask"][()], brain == 1)
        assert h5["test/responses"].shape[1] == int(brain.sum())
        assert list(h5["rois"]) == ["streams"]


@pytest.fixture
def raw_copy(data, tmp_path) -> Path:
    """A copy of the simulated dataset that a test may break."""
    return Path(shutil.copytree(data["raw"], tmp_path / "raw"))


def test_missing_beta_session(raw_copy, data, tmp_path):
    Path(nsd.betas_path(raw_copy, "subj01", 2)).unlink()
    with pytest.raises(FileNotFoundError, match=r"betas_session02\.nii\.gz.*missing"):
        prepare_subject(raw_copy, "subj01", data["stimuli"], tmp_path / "out.h5")
    assert not (tmp_path / "out.h5").exists()


def test_missing_session_of_the_config(raw_copy, data, tmp_path):
    """The study asks for more sessions than are on disk: the first absent one is named."""
    n = len(list(Path(nsd.betas_dir(raw_copy, "subj01")).glob("betas_session*.nii.gz")))
    with pytest.raises(FileNotFoundError, match=rf"betas_session{n + 1:02d}\.nii\.gz.*missing"):
        prepare_subject(raw_copy, "subj01", data["stimuli"], tmp_path / "o.h5", n_sessions=n + 1)
    assert not (tmp_path / "o.h5").exists()


def test_beta_volume_shape_differs_from_mask(raw_copy, data, tmp_path):
    path = nsd.betas_path(raw_copy, "subj01", 2)
    img = nib.load(path)
    nib.save(nib.Nifti1Image(np.asanyarray(img.dataobj)[:-1], img.affine, img.header), path)
    with pytest.raises(ValueError, match=r"betas_session02\.nii\.gz: volume shape .* differs"):
        prepare_subject(raw_copy, "subj01", data["stimuli"], tmp_path / "out.h5")
    assert not (tmp_path / "out.h5").exists()


def test_design_missing_subjectim(raw_copy, data, tmp_path):
    path = nsd.expdesign_path(raw_copy)
    design = {k: v for k, v in scipy.io.loadmat(path).items() if not k.startswith("__")}
    del design["subjectim"]
    scipy.io.savemat(path, design)
    with pytest.raises(KeyError, match=r"nsd_expdesign\.mat: variable 'subjectim' is missing"):
        prepare_subject(raw_copy, "subj01", data["stimuli"], tmp_path / "out.h5")


def test_roi_label_not_in_table(raw_copy, data, tmp_path):
    path = nsd.roi_path(raw_copy, "subj01", "floc-faces")
    img = nib.load(path)
    labels = np.asanyarray(img.dataobj).copy()
    labels[labels == 3] = 9
    nib.save(nib.Nifti1Image(labels, img.affine, img.header), path)
    with pytest.raises(ValueError, match=r"floc-faces\.nii\.gz: labels \[9\] are not in its table"):
        prepare_subject(raw_copy, "subj01", data["stimuli"], tmp_path / "out.h5")
    assert not (tmp_path / "out.h5").exists()


def test_nan_ncsnr_only_in_dropped_voxels(raw_copy, data, tmp_path):
    """A voxel inside the mask with zero betas everywhere and NaN ncsnr is dropped, not an error."""
    with h5py.File(data["responses"], "r") as h5:
        dead, other = tuple(h5["voxel_ijk"][3]), tuple(h5["voxel_ijk"][5])
    n = len(list(Path(nsd.betas_dir(raw_copy, "subj01")).glob("betas_session*.nii.gz")))
    for path in [nsd.betas_path(raw_copy, "subj01", s) for s in range(1, n + 1)]:
        img = nib.load(path)
        betas = np.asanyarray(img.dataobj).copy()
        betas[dead] = 0
        nib.save(nib.Nifti1Image(betas, img.affine, img.header), path)
    path = nsd.ncsnr_path(raw_copy, "subj01")
    img = nib.load(path)
    ncsnr = np.asanyarray(img.dataobj).copy()
    ncsnr[dead] = np.nan
    nib.save(nib.Nifti1Image(ncsnr, img.affine, img.header), path)
    prepare_subject(raw_copy, "subj01", data["stimuli"], tmp_path / "out.h5")
    with h5py.File(tmp_path / "out.h5", "r") as h5:
        assert not h5["mask"][dead] and np.isfinite(h5["ncsnr"][()]).all()
    ncsnr[other] = np.nan
    nib.save(nib.Nifti1Image(ncsnr, img.affine, img.header), path)
    with pytest.raises(ValueError, match=r"ncsnr\.nii\.gz \(inside the voxel mask\): 1 non-finite"):
        prepare_subject(raw_copy, "subj01", data["stimuli"], tmp_path / "out2.h5")


def test_missing_ncsnr(raw_copy, data, tmp_path):
    Path(nsd.ncsnr_path(raw_copy, "subj01")).unlink()
    with pytest.raises(FileNotFoundError, match=r"ncsnr\.nii\.gz.*missing"):
        prepare_subject(raw_copy, "subj01", data["stimuli"], tmp_path / "out.h5")


def test_truncated_nifti(raw_copy, data, tmp_path):
    path = Path(nsd.betas_path(raw_copy, "subj01", 1))
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 2])
    with pytest.raises(ValueError, match=r"betas_session01\.nii\.gz.*truncated"):
        prepare_subject(raw_copy, "subj01", data["stimuli"], tmp_path / "out.h5")
    assert not (tmp_path / "out.h5").exists()


def test_stimuli_lacking_subject_images(data, tmp_path):
    prepare_stimuli(data["raw"], ["subj02"], tmp_path / "stimuli.h5")
    with pytest.raises(ValueError, match=r"stimuli\.h5.*missing"):
        prepare_subject(data["raw"], "subj01", tmp_path / "stimuli.h5", tmp_path / "out.h5")


def test_fewer_sessions_and_constant_voxel(raw_copy, data, tmp_path, caplog):
    """A subject with only some sessions on disk; a voxel constant in every session is dropped."""
    Path(nsd.betas_path(raw_copy, "subj01", 5)).unlink()
    with h5py.File(data["responses"], "r") as h5:
        dead = tuple(h5["voxel_ijk"][0])
    for session in range(1, 5):
        path = nsd.betas_path(raw_copy, "subj01", session)
        img = nib.load(path)
        betas = np.asanyarray(img.dataobj).copy()
        betas[dead] = 123
        nib.save(nib.Nifti1Image(betas, img.affine, img.header), path)
    out = tmp_path / "out.h5"
    with caplog.at_level(logging.WARNING, logger="encscale"):
        prepare_subject(raw_copy, "subj01", data["stimuli"], out)
    assert "dropping 1 of" in caplog.text
    with h5py.File(out, "r") as h5, h5py.File(data["responses"], "r") as full:
        assert h5.attrs["n_sessions"] == 4
        assert h5["voxel_ijk"].shape[0] == full["voxel_ijk"].shape[0] - 1
        assert not h5["mask"][dead]
        n_repeats = np.concatenate([h5["train/n_repeats"][()], h5["test/n_repeats"][()]])
        assert n_repeats.sum() == 4 * PARAMS["trials_per_session"]
        assert 1 <= h5.attrs["noise_ceiling_n"] <= PARAMS["n_repeats"]


# --- 5. the planted signal is in the prepared responses -------------------------------------


def test_test_responses_follow_planted_signal(data):
    with h5py.File(data["responses"], "r") as h5, h5py.File(data["stimuli"], "r") as stim:
        responses = h5["test/responses"][()]
        test_ids = stim["ids"][()][h5["test/stimulus"][()]]
        ijk = h5["voxel_ijk"][()]
    with h5py.File(truth_path(data["raw"], "subj01"), "r") as t:
        signal, signal_ids = t["signal"][()], t["signal_image_ids"][()]
        signal_ijk = t["signal_voxel_ijk"][()]
        snr, ceiling = (t[key][()][tuple(ijk.T)] for key in ("ncsnr_true", "noise_ceiling_r"))
    rows = np.searchsorted(signal_ids, test_ids, sorter=np.argsort(signal_ids))
    rows = np.argsort(signal_ids)[rows]
    np.testing.assert_array_equal(signal_ids[rows], test_ids)
    columns = {tuple(v): i for i, v in enumerate(signal_ijk)}
    planted = signal[rows][:, [columns[tuple(v)] for v in ijk]]

    r = pearson_r(planted, responses)
    high = snr > 1.5
    assert high.sum() > 50
    assert abs(np.mean(r[high] - ceiling[high])) < 0.02
    assert np.mean(np.abs(r[high] - ceiling[high])) < 0.03
    assert np.corrcoef(r, ceiling)[0, 1] > 0.8
