"""A miniature Algonauts 2023 challenge download, made from the pipeline's prepared NSD files.

Paths are spelled out here rather than taken from :mod:`encscale.data.algonauts`, so that tests
check that module's paths against the challenge's layout.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
from PIL import Image

from conftest import SIM_PARAMS
from encscale.data import nsd, prepare
from encscale.simulate.nsd import simulate_nsd

HEMIS = ("lh", "rh")
# The simulator's settings of the miniature NSD that a miniature download is made from.
PARAMS = {
    **SIM_PARAMS,
    "n_subjects": 1,
    "n_shared": 30,
    "n_unique": 80,
    "n_repeats": 3,
    "trials_per_session": 120,
    "volume_shape": [16, 16, 12],
}
FSAVERAGE_PADDING = 0.5  # extra (non-challenge) surface vertices per challenge vertex


def write_miniature_download(
    responses_path: str | Path,
    stimuli_path: str | Path,
    out_root: str | Path,
    subject: str,
    *,
    n_challenge: int,
    fsaverage_root: str | Path | None = None,
    beta_version: str = nsd.BETA_VERSION,
    seed: int = 0,
) -> dict:
    """Write ``out_root/<subject>/`` in the challenge's layout from a prepared NSD subject.

    Vertices are the responses file's voxels: lh those with ``voxel_ijk[:, 0]`` in the first
    half of the volume, rh the rest. Training images: the train split's, in id order, with
    their responses as fMRI rows. Challenge test images: the first ``n_challenge`` of the
    test split's, written in descending id order (so that file order is not id order).
    ROI labels are 1..n in sorted name order per atlas. The fsaverage-space mask interleaves
    the challenge vertices with padding vertices; with ``fsaverage_root``, NSD-layout
    ``{lh,rh}.ncsnr.mgh`` files hold the responses file's ncsnr there (NaN in padding).

    Returns what the tests compare against: ``columns`` (V,) the source voxel of each
    challenge vertex (lh then rh), ``n_lh``, ``n_rh``, ``train_ids`` and ``train_responses``
    (n_train × V, in ``columns`` order), ``challenge_ids`` (file order), ``ncsnr``,
    ``noise_ceiling`` (V,), ``rois`` {``<atlas>/<name>``: (V,) bool}, ``ncsnr_paths``
    (lh, rh) or None, and ``subject_dir``.
    """
    with h5py.File(responses_path, "r") as h5:
        ijk = h5["voxel_ijk"][()]
        is_lh = ijk[:, 0] < h5["mask"].shape[0] / 2
        columns = np.concatenate([np.flatnonzero(is_lh), np.flatnonzero(~is_lh)])
        train = h5["train/responses"][()][:, columns]
        train_rows, test_rows = h5["train/stimulus"][()], h5["test/stimulus"][()]
        ncsnr = h5["ncsnr"][()][columns]
        noise_ceiling = h5["noise_ceiling"][()][columns]
        rois = {
            atlas: {name: dset[()][columns] for name, dset in group.items()}
            for atlas, group in h5["rois"].items()
        }
    with h5py.File(stimuli_path, "r") as h5:
        ids, images = h5["ids"][()], h5["images"][()]
    n_lh = int(is_lh.sum())
    n_vertices = {"lh": n_lh, "rh": columns.size - n_lh}
    hemi_columns = {"lh": slice(0, n_lh), "rh": slice(n_lh, columns.size)}
    train_ids = ids[train_rows]
    challenge_rows = test_rows[:n_challenge][::-1]

    base = Path(out_root) / subject
    _write_images(base / "training_split/training_images", "train", ids, images, train_rows)
    _write_images(base / "test_split/test_images", "test", ids, images, challenge_rows)
    fmri_dir = base / "training_split/training_fmri"
    fmri_dir.mkdir(parents=True)
    roi_dir = base / "roi_masks"
    roi_dir.mkdir()
    for hemi in HEMIS:
        np.save(fmri_dir / f"{hemi}_training_fmri.npy", train[:, hemi_columns[hemi]])
    expected_rois = {}
    for atlas, masks in rois.items():
        names = sorted(masks)
        labels = np.zeros(columns.size, dtype=np.int32)
        for label, name in enumerate(names, start=1):
            labels[masks[name]] = label
            expected_rois[f"{atlas}/{name}"] = masks[name]
        np.save(roi_dir / f"mapping_{atlas}.npy", {0: "Unknown", **dict(enumerate(names, 1))})
        for hemi in HEMIS:
            np.save(roi_dir / f"{hemi}.{atlas}_challenge_space.npy", labels[hemi_columns[hemi]])

    rng = np.random.default_rng(seed)
    ncsnr_paths = None
    if fsaverage_root is not None:
        ncsnr_dir = Path(fsaverage_root, "nsddata_betas/ppdata", subject, "fsaverage", beta_version)
        ncsnr_dir.mkdir(parents=True)
        ncsnr_paths = tuple(str(ncsnr_dir / f"{hemi}.ncsnr.mgh") for hemi in HEMIS)
    for h, hemi in enumerate(HEMIS):
        n = n_vertices[hemi]
        surface = np.zeros(n + int(FSAVERAGE_PADDING * n) + 3, dtype=np.int64)
        surface[np.sort(rng.choice(surface.size, size=n, replace=False))] = 1
        np.save(roi_dir / f"{hemi}.all-vertices_fsaverage_space.npy", surface)
        if ncsnr_paths is not None:
            values = np.full(surface.size, np.nan, dtype=np.float32)
            values[surface == 1] = ncsnr[hemi_columns[hemi]]
            image = nib.MGHImage(values.reshape(-1, 1, 1), np.eye(4))
            nib.save(image, ncsnr_paths[h])
    return {
        "subject_dir": base,
        "columns": columns,
        "n_lh": n_vertices["lh"],
        "n_rh": n_vertices["rh"],
        "train_ids": train_ids,
        "train_responses": train,
        "challenge_ids": ids[challenge_rows],
        "ncsnr": ncsnr,
        "noise_ceiling": noise_ceiling,
        "rois": expected_rois,
        "ncsnr_paths": ncsnr_paths,
    }


def _write_images(
    folder: Path, prefix: str, ids: np.ndarray, images: np.ndarray, rows: np.ndarray
) -> None:
    """PNG files ``<prefix>-NNNN_nsd-NNNNN.png`` (1-based index, 0-based NSD id) of ``rows``."""
    folder.mkdir(parents=True)
    for index, row in enumerate(rows, start=1):
        path = folder / f"{prefix}-{index:04d}_nsd-{ids[row]:05d}.png"
        Image.fromarray(images[row]).save(path)


def download_from_simulation(
    base: Path,
    params: dict,
    subject: str,
    out_root: Path,
    *,
    n_challenge: int,
    fsaverage_root: Path,
) -> dict:
    """Simulate NSD under ``base/nsd``, prepare ``subject`` into ``base/prepared``, and write
    its miniature download (:func:`write_miniature_download`); adds ``nsd_stimuli``."""
    simulate_nsd(base / "nsd", params)
    stimuli, responses = base / "prepared/stimuli.h5", base / "prepared/responses.h5"
    prepare.prepare_stimuli(base / "nsd", [subject], stimuli)
    prepare.prepare_subject(base / "nsd", subject, stimuli, responses)
    expected = write_miniature_download(
        responses,
        stimuli,
        out_root,
        subject,
        n_challenge=n_challenge,
        fsaverage_root=fsaverage_root,
    )
    return {**expected, "nsd_stimuli": stimuli}
