"""End-to-end: a study on a miniature Algonauts 2023 download through to its submissions."""

import io
import zipfile

import h5py
import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from algonauts_download import PARAMS, download_from_simulation

from conftest import load_demo_config, run_snakemake

pytestmark = pytest.mark.slow

SUBJECT = "subj01"
N_CHALLENGE = 9


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    base = tmp_path_factory.mktemp("algonauts_study")
    work = base / "work"
    download = download_from_simulation(
        base,
        PARAMS,
        SUBJECT,
        work / "resources/algonauts2023",
        n_challenge=N_CHALLENGE,
        fsaverage_root=work / "resources/nsd",
    )
    config = load_demo_config()
    config.update(dataset="algonauts2023", subjects=[SUBJECT])
    del config["demo"], config["models"]["convnext_l"]
    # the simulated design's sessions are not NSD's 750 trials: assume the simulated 3
    config["algonauts"] = {"holdout": 0.15, "ncsnr": "nsd", "n_repeats": PARAMS["n_repeats"]}
    config["encoding"].update(sizes=[30, 60], n_draws=1, n_folds=3)
    config["scaling"].update(data_model="convnext_m", param_size=60)
    config["scaling"]["fixed_set"] = {"model": "convnext_m", "layer": "block02", "k": 2}
    config["final"] = {"model": "convnext_m", "atlases": ["prf-visualrois", "floc-faces"]}
    run_snakemake(work, config)
    return work, config, download


def read_submission(path) -> dict[str, np.ndarray]:
    with zipfile.ZipFile(path) as zf:
        return {name: np.load(io.BytesIO(zf.read(name))) for name in zf.namelist()}


def test_submissions_have_the_challenge_layout(study):
    work, config, download = study
    results = work / "results/algonauts2023"
    subs = {
        name: read_submission(results / f"submission/{name}.zip")
        for name in [*config["models"], "ensemble"]
    }
    for files in subs.values():
        assert sorted(files) == [f"{SUBJECT}/lh_pred_test.npy", f"{SUBJECT}/rh_pred_test.npy"]
        lh, rh = files[f"{SUBJECT}/lh_pred_test.npy"], files[f"{SUBJECT}/rh_pred_test.npy"]
        assert lh.dtype == rh.dtype == np.float32
        assert lh.shape == (N_CHALLENGE, download["n_lh"])
        assert rh.shape == (N_CHALLENGE, download["n_rh"])
        assert np.isfinite(lh).all() and np.isfinite(rh).all()
    # each model's files are its refit on every training image (train and held-out split)
    for model in config["models"]:
        refit = work / f"results/algonauts2023/submission/fits/{SUBJECT}/{model}.h5"
        with h5py.File(refit) as h5:
            assert h5.attrs["training_pool"] == "all"
            assert h5["train_rows"].size == download["train_responses"].shape[0]
            pred = h5["challenge_pred"][()]
        lh = subs[model][f"{SUBJECT}/lh_pred_test.npy"]
        np.testing.assert_array_equal(lh, pred[:, : download["n_lh"]])
    # the ensemble is the mean of the models' predictions
    for hemi in ("lh", "rh"):
        key = f"{SUBJECT}/{hemi}_pred_test.npy"
        mean = np.mean([subs[m][key] for m in config["models"]], axis=0)
        np.testing.assert_allclose(subs["ensemble"][key], mean, rtol=1e-6, atol=1e-7)
        assert not np.allclose(subs["convnext_s"][key], subs["convnext_m"][key])


def test_scores_are_noise_normalised_on_the_held_out_images(study):
    work, _, download = study
    scores = pd.read_csv(work / "results/algonauts2023/scores/scores.tsv", sep="\t")
    assert np.isfinite(scores["nn_r2"]).all() and (scores["nn_r2"] <= 100).all()
    streams = scores[(scores["atlas"] == "streams") & (scores["model"] == "convnext_m")]
    # the planted signal is predicted: mean r clearly above chance in the early stream
    early = streams[streams["roi"] == "early"]
    assert (early["r"] > 0.2).all(), early
    n_vertices = scores.loc[scores["atlas"] == "all", "n_voxels"].iloc[0]
    assert n_vertices == download["n_lh"] + download["n_rh"]


def test_brain_maps_are_fsaverage_surfaces(study):
    """Per hemisphere an .mgh over fsaverage: the final model's vertex accuracy at the
    challenge vertices (the mask's non-zero entries, in order), 0 elsewhere; no figures
    without brain_maps.fsaverage_dir."""
    work, config, _ = study
    results = work / "results" / "algonauts2023"
    root = work / "resources" / "algonauts2023"
    final = config["final"]
    with h5py.File(results / "fits" / SUBJECT / final["model"] / "n60_s0.h5") as f:
        r = f["test_r"][()]
    with h5py.File(results / "responses" / f"{SUBJECT}.h5") as h5:
        hemisphere = h5["hemisphere"][()]
    for index, hemi in enumerate(("lh", "rh")):
        mask = np.load(root / SUBJECT / "roi_masks" / f"{hemi}.all-vertices_fsaverage_space.npy")
        for name in ("accuracy", "slope"):
            data = np.asarray(nib.load(results / "maps" / SUBJECT / f"{hemi}.{name}.mgh").dataobj)
            assert data.shape == (mask.size, 1, 1)
            assert not data[mask == 0].any()
            if name == "accuracy":
                np.testing.assert_allclose(data[mask != 0, 0, 0], r[hemisphere == index], rtol=1e-6)
    assert not (results / "figures" / "brain_maps").exists()
