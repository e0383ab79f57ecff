"""Reading an Algonauts 2023 challenge download into the pipeline's stimuli and responses files.

The download holds, per subject, under ``root/subjXX/``:

- ``training_split/training_fmri/{lh,rh}_training_fmri.npy``: (n_train × n_vertices_hemi)
  float32, session-z-scored responses averaged over repeats, one row per training image in
  the order of the image file names;
- ``training_split/training_images/train-NNNN_nsd-NNNNN.png`` and
  ``test_split/test_images/test-NNNN_nsd-NNNNN.png``: RGB images (425 × 425). NNNN is a
  1-based running index (4 digits), NNNNN the image's 0-based 73k NSD id (5 digits), i.e.
  its row of NSD's ``imgBrick`` and the pipeline's id: the challenge's own preparation code
  (github.com/gifale95/algonauts_2023, ``code/01_challenge_data_preparation``) names each
  image after ``subjectim - 1``. The challenge withholds the test images' fMRI;
- ``roi_masks/{lh,rh}.<roi>_challenge_space.npy``: (n_vertices_hemi,) integer labels,
  0 = none, named by ``roi_masks/mapping_<roi>.npy`` (a pickled dict {label: name});
- ``roi_masks/{lh,rh}.all-vertices_fsaverage_space.npy``: a mask over fsaverage's 163842
  vertices whose non-zero entries are the challenge's vertices, in order.

How it maps to the pipeline's files (layouts: :mod:`encscale.contracts`):

- ``stimuli.h5``: the training and test images of the subjects, one per NSD id;
- ``responses/<subject>.h5``, a surface dataset: the fMRI columns are the vertices, lh then
  rh. A seeded random ``holdout`` fraction of the training images is the ``test`` split
  scored downstream, the rest ``train``; the test images are the ``challenge`` stimuli.
  ``ncsnr`` comes from NSD's fsaverage-space ``{lh,rh}.ncsnr.mgh``
  (:func:`encscale.data.nsd.fsaverage_ncsnr_path`) when given, else NaN; ``noise_ceiling``
  is the challenge's (:func:`encscale.metrics.algonauts_noise_ceiling`) for the held-out
  images.

The download does not say how many trials each training row averages. The challenge's
preparation code averaged each image's trials in the subject's completed sessions but the
last three (the withheld test sessions); :func:`training_trial_counts` counts them in NSD's
design file (``nsd_expdesign.mat``), and the noise ceiling's k = mean(1/n) over the held-out
images uses those counts (2.3–2.8 trials on average for subjects 3, 4, 6 and 8, not 3).
"""

from __future__ import annotations

import logging
import re
import warnings
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from PIL import Image

from encscale.contracts import (
    Responses,
    Split,
    create_image_stimuli,
    read_fit,
    read_responses,
    write_responses,
)
from encscale.data import nsd
from encscale.data.prepare import STIMULI_BATCH, stimulus_rows
from encscale.io import PathLike, atomic_path, check_finite, require_file
from encscale.jobs import progress
from encscale.metrics import algonauts_noise_ceiling, noise_ceiling_k

log = logging.getLogger(__name__)

DATASET = "algonauts2023"
HEMIS = ("lh", "rh")
TRIALS_PER_SESSION = 750  # NSD's trials per scan session
WITHHELD_SESSIONS = 3  # each subject's last completed sessions: the challenge's test data
ROI_ATLASES = (
    "prf-visualrois",
    "floc-bodies",
    "floc-faces",
    "floc-places",
    "floc-words",
    "streams",
)
SPLITS = ("train", "test")
# Per subject: the challenge's training images (with responses), its test images (without),
# and its fsaverage vertices (lh + rh), as released.
TRAIN_IMAGES = {"subj01": 9841, "subj02": 9841, "subj03": 9082, "subj04": 8779,
                "subj05": 9841, "subj06": 9082, "subj07": 9841, "subj08": 8779}  # fmt: skip
TEST_IMAGES = {"subj01": 159, "subj02": 159, "subj03": 293, "subj04": 395,
               "subj05": 159, "subj06": 293, "subj07": 159, "subj08": 395}  # fmt: skip
VERTICES = {s: 19004 + 20544 for s in TRAIN_IMAGES} | {
    "subj06": 18978 + 20220,
    "subj08": 18981 + 20530,
}
_SPLIT_FOLDERS = {
    "train": ("training_split", "training_images"),
    "test": ("test_split", "test_images"),
}


# --- paths ---------------------------------------------------------------------------------


def fmri_path(root: PathLike, subject: str, hemi: str) -> str:
    """Training fMRI of one hemisphere: (n_train × n_vertices_hemi) float32 ``.npy``."""
    _check_hemi(hemi)
    return str(Path(root) / subject / "training_split/training_fmri" / f"{hemi}_training_fmri.npy")


def images_dir(root: PathLike, subject: str, split: str) -> str:
    """Folder of a split's images; ``split`` is ``train`` or ``test`` (the name prefix)."""
    if split not in _SPLIT_FOLDERS:
        raise ValueError(f"unknown split '{split}' (expected 'train' or 'test')")
    return str(Path(root, subject, *_SPLIT_FOLDERS[split]))


def roi_mask_path(root: PathLike, subject: str, hemi: str, roi: str) -> str:
    """Challenge-space label vector of an ROI atlas: (n_vertices_hemi,) int, 0 = none."""
    _check_hemi(hemi)
    return str(Path(root) / subject / "roi_masks" / f"{hemi}.{roi}_challenge_space.npy")


def roi_mapping_path(root: PathLike, subject: str, roi: str) -> str:
    """Label names of an ROI atlas: a pickled dict {label: name} saved with ``np.save``."""
    return str(Path(root) / subject / "roi_masks" / f"mapping_{roi}.npy")


def fsaverage_mask_path(root: PathLike, subject: str, hemi: str) -> str:
    """Mask over fsaverage's vertices (163842,) whose non-zero entries are the challenge's."""
    _check_hemi(hemi)
    return str(Path(root) / subject / "roi_masks" / f"{hemi}.all-vertices_fsaverage_space.npy")


def _check_hemi(hemi: str) -> None:
    if hemi not in HEMIS:
        raise ValueError(f"unknown hemisphere '{hemi}' (expected 'lh' or 'rh')")


# --- readers -------------------------------------------------------------------------------


def image_files(root: PathLike, subject: str, split: str) -> list[tuple[int, int, str]]:
    """(index, 0-based NSD id, path) of each image of a split, by index (1..n).

    Every entry of the folder must be named ``<split>-NNNN_nsd-NNNNN.png``; the indices
    must run 1..n without gaps and the ids be distinct.
    """
    folder = Path(images_dir(root, subject, split))
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: image folder is missing")
    pattern = re.compile(rf"{split}-(\d{{4}})_nsd-(\d{{5}})\.png")
    entries = []
    for path in folder.iterdir():
        match = pattern.fullmatch(path.name)
        if match is None or not path.is_file():
            raise ValueError(f"{path}: not an image named {split}-NNNN_nsd-NNNNN.png")
        entries.append((int(match.group(1)), int(match.group(2)), str(path)))
    entries.sort()
    if not entries:
        raise ValueError(f"{folder}: no images")
    indices = [index for index, _, _ in entries]
    if indices != list(range(1, len(entries) + 1)):
        missing = sorted(set(range(1, len(entries) + 1)) - set(indices))
        raise ValueError(
            f"{folder}: image indices are not 1..{len(entries)} without gaps "
            f"(missing {missing[:5]}, largest {indices[-1]})"
        )
    ids, counts = np.unique([nsd_id for _, nsd_id, _ in entries], return_counts=True)
    if np.any(counts > 1):
        raise ValueError(f"{folder}: NSD id {ids[counts > 1][0]} appears more than once")
    return entries


def read_image(path: PathLike) -> np.ndarray:
    """An image file as RGB pixels: (H × W × 3) uint8."""
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"), dtype=np.uint8)
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: cannot read image (truncated or not an image): {err}") from err


def _load_npy(path: PathLike, what: str, mmap: bool = False) -> np.ndarray:
    """A ``.npy`` array (no pickles), with errors naming the file."""
    path = require_file(path, f"{what} file")
    try:
        return np.load(path, mmap_mode="r" if mmap else None)
    except (OSError, ValueError, EOFError) as err:
        raise ValueError(f"{path}: cannot read {what} (truncated or not .npy): {err}") from err


def read_fmri(path: PathLike, n_images: int, folder: PathLike) -> np.ndarray:
    """One hemisphere's training fMRI, checked: (n_images × n_vertices_hemi) float32."""
    fmri = _load_npy(path, "fMRI", mmap=True)
    if fmri.ndim != 2 or not np.issubdtype(fmri.dtype, np.floating):
        raise ValueError(
            f"{path}: fMRI is {fmri.dtype} {fmri.shape}, expected 2-D float (images × vertices)"
        )
    if fmri.shape[0] != n_images:
        raise ValueError(f"{path}: {fmri.shape[0]} rows, but {folder} holds {n_images} images")
    fmri = np.asarray(fmri, dtype=np.float32)
    check_finite(fmri, str(path))
    return fmri


def read_mapping(path: PathLike) -> dict[int, str]:
    """An ROI atlas's {label: name}, 0 (``Unknown``) included, from its pickled dict."""
    path = require_file(path, "ROI mapping file")
    try:
        table = np.load(path, allow_pickle=True).item()
        return {int(label): str(name) for label, name in table.items()}
    except (OSError, ValueError, EOFError, AttributeError, TypeError) as err:
        raise ValueError(
            f"{path}: cannot read ROI mapping (a saved {{label: name}}): {err}"
        ) from err


def read_labels(
    path: PathLike, n_vertices: int, mapping: dict[int, str], mapping_path: PathLike
) -> np.ndarray:
    """A challenge-space ROI label vector, checked against its length and mapping: (V,) int64."""
    labels = _load_npy(path, "ROI mask")
    if labels.shape != (n_vertices,):
        raise ValueError(
            f"{path}: ROI mask has shape {labels.shape}, expected ({n_vertices},), the "
            "hemisphere's fMRI columns"
        )
    if not np.issubdtype(labels.dtype, np.number) or np.any(labels != np.round(labels)):
        raise ValueError(f"{path}: ROI mask holds non-integer labels")
    labels = labels.astype(np.int64)
    unknown = np.setdiff1d(labels, [0, *mapping])
    if unknown.size:
        raise ValueError(f"{path}: label {unknown[0]} is not in {mapping_path}")
    return labels


def read_fsaverage_mask(path: PathLike) -> np.ndarray:
    """The challenge vertices among fsaverage's: (n_fsaverage,) bool, from the non-zero entries."""
    mask = _load_npy(path, "fsaverage vertex mask")
    if mask.ndim != 1:
        raise ValueError(f"{path}: fsaverage vertex mask has shape {mask.shape}, expected 1-D")
    return mask != 0


def read_mgh_vector(path: PathLike, what: str) -> np.ndarray:
    """A surface ``.mgh`` file's values, ravelled: (n_vertices,) float64."""
    path = require_file(path, f"{what} file")
    try:
        return np.asarray(nib.load(path).get_fdata()).ravel()
    except (OSError, EOFError, ValueError, nib.filebasedimages.ImageFileError) as err:
        raise ValueError(f"{path}: cannot read {what} (truncated or not MGH): {err}") from err


# --- stimuli -------------------------------------------------------------------------------


def prepare_stimuli(
    root: PathLike,
    subjects: Sequence[str],
    out_path: PathLike,
    provenance: Mapping[str, Any] | None = None,
) -> None:
    """Write the subjects' training and test images to ``out_path``, one per NSD id, sorted.

    An id in several folders must have identical pixels; all images must share one size.
    """
    sources: dict[int, list[str]] = {}
    for subject in subjects:
        for split in SPLITS:
            for _, nsd_id, path in image_files(root, subject, split):
                sources.setdefault(nsd_id, []).append(path)
    ids = np.array(sorted(sources), dtype=np.int64)
    if ids.size == 0:
        raise ValueError(f"{root}: no subjects given")
    first = sources[int(ids[0])][0]
    shape = read_image(first).shape
    bar = progress(total=ids.size, desc="stimuli", unit="images", write=log.info)
    with create_image_stimuli(out_path, ids, shape, provenance) as images, bar:
        for start in range(0, ids.size, STIMULI_BATCH):
            chunk = ids[start : start + STIMULI_BATCH]
            images[start : start + chunk.size] = np.stack(
                [_shared_pixels(sources[int(i)], shape, first) for i in chunk]
            )
            bar.update(chunk.size)


def _shared_pixels(paths: list[str], shape: tuple[int, ...], first: str) -> np.ndarray:
    """The pixels of ``paths``, files of one NSD id: checked to be identical and of ``shape``."""
    pixels = read_image(paths[0])
    if pixels.shape != shape:
        raise ValueError(f"{paths[0]}: image is {pixels.shape[:2]}, but {first} is {shape[:2]}")
    for other in paths[1:]:
        if not np.array_equal(read_image(other), pixels):
            raise ValueError(f"{other}: pixels differ from {paths[0]}, an image of the same NSD id")
    return pixels


# --- responses -----------------------------------------------------------------------------


def count_training_images(root: PathLike, subject: str) -> int:
    """Number of files in a subject's training image folder; 0 if the folder is absent."""
    folder = Path(images_dir(root, subject, "train"))
    return sum(1 for _ in folder.iterdir()) if folder.is_dir() else 0


def holdout_count(n_images: int, holdout: float) -> int:
    """Images held out of ``n_images`` for the test split: max(1, round(holdout·n))."""
    if not 0 < holdout < 1:
        raise ValueError(f"holdout must be in (0, 1), got {holdout}")
    return max(1, round(holdout * n_images))


def holdout_rows(n_images: int, holdout: float, seed: int) -> np.ndarray:
    """(n_images,) bool: a seeded random :func:`holdout_count` images for the test split."""
    n_test = holdout_count(n_images, holdout)
    if n_test >= n_images:
        raise ValueError(f"holdout {holdout} of {n_images} images leaves none for training")
    is_test = np.zeros(n_images, dtype=bool)
    is_test[np.random.default_rng(seed).choice(n_images, size=n_test, replace=False)] = True
    return is_test


def read_ncsnr(
    root: PathLike, subject: str, ncsnr: Sequence[PathLike], n_columns: Sequence[int]
) -> np.ndarray:
    """NSD's fsaverage ncsnr (lh, rh ``.mgh``) at the challenge vertices: (V,) float32."""
    if len(ncsnr) != len(HEMIS):
        raise ValueError(f"ncsnr needs one .mgh file per hemisphere (lh, rh), got {ncsnr}")
    values = []
    for hemi, path, n in zip(HEMIS, ncsnr, n_columns, strict=True):
        mask_path = fsaverage_mask_path(root, subject, hemi)
        mask = read_fsaverage_mask(mask_path)
        if mask.sum() != n:
            raise ValueError(
                f"{mask_path}: {int(mask.sum())} challenge vertices, but "
                f"{fmri_path(root, subject, hemi)} has {n} columns"
            )
        surface = read_mgh_vector(path, "ncsnr")
        if surface.size != mask.size:
            raise ValueError(f"{path}: {surface.size} vertices, but {mask_path} has {mask.size}")
        values.append(surface[mask].astype(np.float32))
        check_finite(values[-1], f"{path} (at the challenge vertices)")
    return np.concatenate(values)


def roi_datasets(
    root: PathLike, subject: str, rois: Sequence[str], n_columns: Sequence[int]
) -> dict[tuple[str, str], np.ndarray]:
    """(atlas ``roi``, label name) → (V,) bool over both hemispheres, for every named label
    but 0: a responses file's ROI masks."""
    masks = {}
    for roi in rois:
        mapping_path = roi_mapping_path(root, subject, roi)
        mapping = read_mapping(mapping_path)
        labels = np.concatenate(
            [
                read_labels(roi_mask_path(root, subject, hemi, roi), n, mapping, mapping_path)
                for hemi, n in zip(HEMIS, n_columns, strict=True)
            ]
        )
        for label, name in sorted(mapping.items()):
            if label != 0:
                masks[(roi, name)] = labels == label
    return masks


def prepare_subject(
    root: PathLike,
    subject: str,
    stimuli_path: PathLike,
    out_path: PathLike,
    *,
    rois: Sequence[str] = ROI_ATLASES,
    holdout: float = 0.1,
    seed: int = 0,
    ncsnr: Sequence[PathLike] | None = None,
    design: PathLike | None = None,
    n_repeats: int | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> None:
    """Write one subject's responses file (layout in the module doc).

    ``ncsnr``: NSD's (lh, rh) fsaverage ``ncsnr.mgh`` files, or None for NaN ncsnr and
    noise ceiling. The trials each training row averages (``n_repeats`` of the splits, and
    the ceiling's k) are counted in NSD's ``design`` file (:func:`training_trial_counts`);
    ``n_repeats`` instead assumes that many for every image, with a warning. With ncsnr one
    of the two is required; without, the counts are 0 (unknown) where neither is given.
    """
    train_images = image_files(root, subject, "train")
    challenge_images = image_files(root, subject, "test")
    folder = images_dir(root, subject, "train")
    fmri = [read_fmri(fmri_path(root, subject, h), len(train_images), folder) for h in HEMIS]
    n_columns = [f.shape[1] for f in fmri]
    responses = np.concatenate(fmri, axis=1)
    del fmri

    stimulus = stimulus_rows(stimuli_path, np.array([i for _, i, _ in train_images]))
    challenge = stimulus_rows(stimuli_path, np.array([i for _, i, _ in challenge_images]))
    is_test = holdout_rows(len(train_images), holdout, seed)
    repeats = _trial_counts(subject, [i for _, i, _ in train_images], design, n_repeats, ncsnr)
    masks = roi_datasets(root, subject, rois, n_columns)
    if ncsnr is None:
        log.warning(
            "%s: no ncsnr given: noise_ceiling is NaN, so noise-normalised scores will be NaN",
            subject,
        )
        snr = np.full(responses.shape[1], np.nan, dtype=np.float32)
        ceiling, k = np.full_like(snr, np.nan), float("nan")
    else:
        snr = read_ncsnr(root, subject, ncsnr, n_columns)
        ceiling = algonauts_noise_ceiling(snr, repeats[is_test])
        k = noise_ceiling_k(repeats[is_test])

    splits = {}
    for split, rows in (("train", ~is_test), ("test", is_test)):
        order = np.flatnonzero(rows)[np.argsort(stimulus[rows], kind="stable")]
        splits[split] = Split(responses[order], stimulus[order], n_repeats=repeats[order])
    attrs = dict(
        subject=subject,
        dataset=DATASET,
        holdout=holdout,
        seed=seed,
        noise_ceiling_k=k,
        noise_ceiling_n=1.0 / k,
        n_vertices_lh=n_columns[0],
        n_vertices_rh=n_columns[1],
    )
    write_responses(
        out_path,
        Responses(
            **splits,
            challenge_stimulus=challenge,
            ncsnr=snr,
            noise_ceiling=ceiling,
            hemisphere=np.repeat(np.arange(len(HEMIS)), n_columns),
            vertex=np.concatenate([np.arange(n) for n in n_columns]),
            rois=masks,
            attrs=attrs,
        ),
        provenance,
    )
    log.info(
        "%s: %d + %d vertices, %d train, %d held-out and %d challenge images",
        subject,
        n_columns[0],
        n_columns[1],
        int((~is_test).sum()),
        int(is_test.sum()),
        challenge.size,
    )


def training_trial_counts(
    design: Mapping[str, np.ndarray], subject: str, nsd_ids: Sequence[int] | np.ndarray
) -> np.ndarray:
    """Trials each training image of the challenge averages, (n,) int32, for its 0-based NSD
    ids: its trials in the subject's completed sessions (:data:`encscale.data.nsd.SESSIONS`)
    but the last :data:`WITHHELD_SESSIONS`, as the challenge's preparation code averaged
    them. ``design``: :func:`encscale.data.nsd.read_expdesign`."""
    sessions = nsd.SESSIONS[subject] - WITHHELD_SESSIONS
    n_trials = sessions * TRIALS_PER_SESSION
    trials = nsd.trial_image_ids(design, subject)
    if trials.size < n_trials:
        raise ValueError(
            f"the NSD design has {trials.size} trials; {subject}'s {sessions} training "
            f"sessions need {n_trials}: not NSD's design"
        )
    ids, counts = np.unique(trials[:n_trials], return_counts=True)
    nsd_ids = np.asarray(nsd_ids, dtype=np.int64)
    pos = np.minimum(np.searchsorted(ids, nsd_ids), ids.size - 1)
    missing = ids[pos] != nsd_ids
    if missing.any():
        raise ValueError(
            f"{subject}'s training image nsd-{nsd_ids[missing][0]:05d} has no trial in sessions "
            f"1–{sessions} of the NSD design ({int(missing.sum())} such images): not the "
            "challenge's download of this subject"
        )
    return counts[pos].astype(np.int32)


def _trial_counts(
    subject: str,
    nsd_ids: Sequence[int],
    design: PathLike | None,
    n_repeats: int | None,
    ncsnr: Sequence[PathLike] | None,
) -> np.ndarray:
    """The training rows' trial counts for :func:`prepare_subject`."""
    if design is not None and n_repeats is not None:
        raise ValueError(f"{subject}: give NSD's design file or n_repeats, not both")
    if design is not None:
        try:
            return training_trial_counts(nsd.read_expdesign(design), subject, nsd_ids)
        except ValueError as err:
            raise ValueError(f"{design}: {err}") from err
    if n_repeats is not None:
        message = (
            f"{subject}: no NSD design file: every training image is assumed to average "
            f"{n_repeats} trials (the challenge's average 2.3–2.8 for subjects 3, 4, 6, 8), "
            "so noise ceilings are too high and noise-normalised scores too low"
        )
        log.warning(message)
        warnings.warn(message, stacklevel=3)
        return np.full(len(nsd_ids), n_repeats, dtype=np.int32)
    if ncsnr is not None:
        raise ValueError(
            f"{subject}: the noise ceiling needs each held-out image's trial count: give NSD's "
            "design file (nsddata/experiments/nsd/nsd_expdesign.mat), or n_repeats to assume one"
        )
    return np.zeros(len(nsd_ids), dtype=np.int32)  # unknown, and no ceiling to compute


# --- submission ----------------------------------------------------------------------------


def write_submission(
    fit_paths: Sequence[PathLike], responses_path: PathLike, out_dir: PathLike
) -> None:
    """Write one subject's challenge submission, ``out_dir/{lh,rh}_pred_test.npy``.

    Each file is (n_challenge × n_vertices_hemi) float32: the mean over ``fit_paths`` of
    their ``challenge_pred`` (n_challenge × V), split by the responses file's ``hemisphere``.
    """
    if not fit_paths:
        raise ValueError(f"{responses_path}: no fit files to write a submission from")
    resp = read_responses(responses_path, ["surface", "challenge"])
    hemisphere, subject = resp.hemisphere, resp.attrs.get("subject")
    n_challenge = resp.challenge_stimulus.size
    if np.setdiff1d(hemisphere, np.arange(len(HEMIS))).size:
        raise ValueError(f"{responses_path}: 'hemisphere' holds values other than 0 (lh), 1 (rh)")
    total = np.zeros((n_challenge, hemisphere.size), dtype=np.float64)
    for path in fit_paths:
        fit = read_fit(path, ["challenge_pred"])  # finite
        pred, fit_subject = fit.challenge_pred, fit.attrs.get("subject")
        if pred.shape != total.shape:
            raise ValueError(
                f"{path}: challenge predictions have shape {pred.shape}, expected "
                f"{total.shape} (challenge images × vertices of {responses_path})"
            )
        if None not in (subject, fit_subject) and str(fit_subject) != str(subject):
            raise ValueError(f"{path}: a fit of {fit_subject}, but {responses_path} is {subject}")
        total += pred
    mean = (total / len(fit_paths)).astype(np.float32)
    for code, hemi in enumerate(HEMIS):
        with atomic_path(Path(out_dir) / f"{hemi}_pred_test.npy") as tmp, open(tmp, "wb") as f:
            np.save(f, mean[:, hemisphere == code])
    log.info("%s: submission of %d fits written to %s", subject, len(fit_paths), out_dir)


def zip_submission(files: Sequence[PathLike], out_path: PathLike) -> None:
    """Zip submission files as the challenge takes them: ``subjXX/{lh,rh}_pred_test.npy``."""
    with atomic_path(out_path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in files:
            path = Path(path)
            zf.write(path, arcname=f"{path.parent.name}/{path.name}")
