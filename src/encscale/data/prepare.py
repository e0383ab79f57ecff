"""Preparation of NSD-layout data (real or simulated) into stimuli and response files
(layouts: :mod:`encscale.contracts`; a volume dataset, with NSD's attributes).

The test split is the subject's images among NSD's shared images (``sharedix``), the
train split the rest. Voxel columns follow the C-order of ``mask``. Voxels whose betas are
constant in every session are dropped with a warning (they carry no signal); a voxel
constant in some sessions only gets 0 for those sessions' trials. Non-finite betas or
ncsnr values are an error.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import h5py
import numpy as np

from encscale.contracts import (
    Responses,
    Split,
    create_image_stimuli,
    read_stimulus_ids,
    view_image_stimuli,
    write_responses,
)
from encscale.data import nsd
from encscale.io import check_finite, open_h5, read_h5
from encscale.jobs import progress
from encscale.metrics import noise_ceiling

log = logging.getLogger(__name__)

ATLASES = ("streams", "prf-visualrois", "floc-faces", "floc-bodies", "floc-places", "floc-words")
STIMULI_BATCH = 64  # images read from imgBrick per request


def prepare_stimuli(
    root: str | os.PathLike,
    subjects: Sequence[str],
    out_path: str | os.PathLike,
    source: str | os.PathLike | BinaryIO | None = None,
    provenance: Mapping[str, Any] | None = None,
    view: bool = False,
) -> None:
    """Copy the images any of ``subjects`` sees (per the design) into ``out_path``, sorted by id.

    ``source``: the stimuli HDF5 as a path or an open binary file (e.g. a remote object,
    :func:`encscale.data.s3.open_remote`); by default NSD's file under ``root``. ``imgBrick``
    is read in batches of sorted rows, never whole, so a remote source transfers only the
    images the subjects saw. ``view``: with a source file on disk, write a view of its rows
    instead of a copy (:func:`encscale.contracts.view_image_stimuli`; NSD's 73,000 images
    are 38 GB).
    """
    design = nsd.read_expdesign(nsd.expdesign_path(root))
    ids = np.unique(np.concatenate([nsd.subject_image_ids(design, s) for s in subjects]))
    source = nsd.stimuli_path(root) if source is None else source
    name = getattr(source, "name", source)  # a remote file names its URL
    with _open_stimuli(source) as src:
        if "imgBrick" not in src:
            raise KeyError(f"{name}: dataset 'imgBrick' is missing")
        brick = src["imgBrick"]
        if brick.ndim != 4 or brick.shape[3] != 3 or brick.dtype != np.uint8:
            raise ValueError(
                f"{name}: imgBrick is {brick.dtype} {brick.shape}, expected N×H×W×3 uint8"
            )
        if ids[-1] >= brick.shape[0]:
            raise ValueError(
                f"{name}: the design uses image id {ids[-1]}, imgBrick has {brick.shape[0]}"
            )
        if view and isinstance(source, str | os.PathLike):
            view_image_stimuli(out_path, ids, source, "imgBrick", brick.shape, provenance)
            log.info("%d images: a view of %s", ids.size, source)
            return
        bar = progress(total=ids.size, desc="stimuli", unit="images", write=log.info)
        with create_image_stimuli(out_path, ids, brick.shape[1:], provenance) as images, bar:
            for start in range(0, ids.size, STIMULI_BATCH):
                rows = ids[start : start + STIMULI_BATCH]
                images[start : start + rows.size] = brick[rows]
                bar.update(rows.size)


def prepare_subject(
    root: str | os.PathLike,
    subject: str,
    stimuli_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    beta_version: str = nsd.BETA_VERSION,
    atlases: Sequence[str] = ATLASES,
    mask_roi: str | None = "nsdgeneral",
    n_sessions: int | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> None:
    """Write one subject's repeat-averaged, session-z-scored responses (layout in module doc).

    Voxels: the brain mask, intersected with ``mask_roi == 1`` if given. Sessions: 1 …
    ``n_sessions`` (each file must exist), or by default the beta files present (1..n); only
    their trials count. Values outside the voxel mask (NSD: zeros and NaNs) are never read.
    """
    root = Path(root)
    design = nsd.read_expdesign(nsd.expdesign_path(root))
    trial_ids = nsd.trial_image_ids(design, subject)
    if n_sessions is None:
        sessions = nsd.session_numbers(root, subject, beta_version)
    else:
        sessions = list(range(1, n_sessions + 1))

    mask, affine = _voxel_mask(root, subject, mask_roi)
    ncsnr_file = nsd.ncsnr_path(root, subject, beta_version)
    ncsnr = _volume_values(ncsnr_file, "ncsnr", mask).astype(np.float32)
    atlas_labels = {atlas: _atlas_labels(root, subject, atlas, mask) for atlas in atlases}

    images = np.unique(trial_ids)
    sums, counts, varying = _accumulate_sessions(
        root, subject, beta_version, sessions, trial_ids, images, mask
    )
    if not varying.all():
        log.warning(
            "%s: dropping %d of %d voxels whose betas are constant in every session",
            subject,
            int((~varying).sum()),
            varying.size,
        )
        mask[mask] = varying
    check_finite(ncsnr[varying], f"{ncsnr_file} (inside the voxel mask)")
    seen = counts > 0
    responses = sums[seen][:, varying] / counts[seen, None].astype(np.float32)
    ids, n_repeats = images[seen], counts[seen]
    stimulus = stimulus_rows(stimuli_path, ids)
    is_test = np.isin(ids, design["sharedix"] - 1)
    if not is_test.any():
        raise ValueError(f"{subject}: none of the shared images (test split) has a trial")
    n_eff = 1.0 / np.mean(1.0 / n_repeats[is_test])  # NSD: mean of 1/n over test images

    splits = {}
    for split, rows in (("train", ~is_test), ("test", is_test)):
        order = np.flatnonzero(rows)[np.argsort(stimulus[rows], kind="stable")]
        splits[split] = Split(responses[order], stimulus[order], n_repeats=n_repeats[order])
    rois = {
        (atlas, name): labels[varying] == label
        for atlas, (labels, table) in atlas_labels.items()
        for label, name in table.items()
        if label > 0
    }
    attrs = dict(
        subject=subject,
        beta_version=beta_version,
        n_sessions=len(sessions),
        mask_roi=mask_roi or "",
        noise_ceiling_n=n_eff,
    )
    write_responses(
        out_path,
        Responses(
            **splits,
            noise_ceiling=noise_ceiling(ncsnr[varying], n_eff),
            ncsnr=ncsnr[varying],
            rois=rois,
            voxel_ijk=np.argwhere(mask),
            mask=mask,
            affine=affine,
            attrs=attrs,
        ),
        provenance,
    )
    log.info(
        "%s: %d voxels, %d train and %d test images",
        subject,
        int(mask.sum()),
        int((~is_test).sum()),
        int(is_test.sum()),
    )


def _voxel_mask(root: Path, subject: str, mask_roi: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Brain mask ∩ (``mask_roi`` == 1) → (bool volume, affine)."""
    brain, affine = nsd.load_nifti(nsd.brainmask_path(root, subject), "brain mask")
    mask = brain > 0
    if mask_roi:
        path = nsd.roi_path(root, subject, mask_roi)
        roi, _ = nsd.load_nifti(path, f"{mask_roi} ROI")
        _check_shape(path, roi.shape, mask.shape)
        mask &= roi == 1
    if not mask.any():
        raise ValueError(f"{nsd.brainmask_path(root, subject)}: no voxel in the mask ({mask_roi})")
    return mask, affine


def _atlas_labels(
    root: Path, subject: str, atlas: str, mask: np.ndarray
) -> tuple[np.ndarray, dict[int, str]]:
    """An atlas's labels at ``mask`` and its label table; every label used must be in the table."""
    path = nsd.roi_path(root, subject, atlas)
    volume, _ = nsd.load_nifti(path, f"{atlas} ROI")
    _check_shape(path, volume.shape, mask.shape)
    table = nsd.read_ctab(nsd.ctab_path(root, subject, atlas))
    used = np.unique(volume[volume > 0]).astype(np.int64)
    unknown = sorted(set(used.tolist()) - set(table))
    if unknown:
        raise ValueError(
            f"{path}: labels {unknown} are not in its table {nsd.ctab_path(root, subject, atlas)}"
        )
    return volume[mask], table


def _open_stimuli(source: str | os.PathLike | BinaryIO) -> h5py.File:
    """Open the stimuli HDF5 from a path or a binary file object."""
    if isinstance(source, str | os.PathLike):
        return open_h5(source, "NSD stimuli")
    try:
        return read_h5(source)
    except OSError as err:
        raise OSError(f"{getattr(source, 'name', source)}: cannot read NSD stimuli: {err}") from err


def _volume_values(path: str, what: str, mask: np.ndarray) -> np.ndarray:
    """Values of a 3-D volume at ``mask`` (C-order), checking its shape."""
    volume, _ = nsd.load_nifti(path, what)
    _check_shape(path, volume.shape, mask.shape)
    return volume[mask]


def _check_shape(path: str, shape: tuple[int, ...], expected: tuple[int, ...]) -> None:
    if tuple(shape) != tuple(expected):
        raise ValueError(
            f"{path}: volume shape {tuple(shape)} differs from the brain mask's {expected}"
        )


def _accumulate_sessions(
    root: Path,
    subject: str,
    beta_version: str,
    sessions: list[int],
    trial_ids: np.ndarray,
    images: np.ndarray,
    mask: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stream the sessions: per image the sum of z-scored betas and the trial count.

    → sums (n_images, V) float32, counts (n_images,) int64, varying (V,) bool: the voxel
    varies in at least one session.
    """
    sums = np.zeros((images.size, int(mask.sum())), dtype=np.float32)
    counts = np.zeros(images.size, dtype=np.int64)
    varying = np.zeros(sums.shape[1], dtype=bool)
    offset = 0
    for session in sessions:
        path = nsd.betas_path(root, subject, session, beta_version)
        volume, _ = nsd.load_nifti(path, "betas", ndim=4)
        _check_shape(path, volume.shape[:3], mask.shape)
        n_trials = volume.shape[3]
        if offset + n_trials > trial_ids.size:
            raise ValueError(
                f"{path}: {n_trials} trials exceed the design's {trial_ids.size} "
                f"({offset} in the earlier sessions)"
            )
        betas = volume[mask].T.astype(np.float32) / nsd.PSC_SCALE  # (trials, V)
        del volume
        check_finite(betas, f"{path} (inside the voxel mask)")
        varying |= betas.std(axis=0) > 0
        rows = np.searchsorted(images, trial_ids[offset : offset + n_trials])
        order = np.argsort(rows, kind="stable")
        unique_rows, starts, repeats = np.unique(rows[order], return_index=True, return_counts=True)
        sums[unique_rows] += np.add.reduceat(nsd.zscore_trials(betas)[order], starts, axis=0)
        counts[unique_rows] += repeats
        offset += n_trials
        log.info("%s: session %d / %d, %d trials", subject, session, len(sessions), n_trials)
    return sums, counts, varying


def stimulus_rows(stimuli_path: str | os.PathLike, ids: np.ndarray) -> np.ndarray:
    """Rows of ``stimuli.h5`` holding the 0-based NSD ``ids``; an error if one is absent."""
    known = read_stimulus_ids(stimuli_path)
    rows = np.searchsorted(known, ids).clip(max=known.size - 1)
    absent = known[rows] != ids
    if absent.any():
        raise ValueError(
            f"{stimuli_path}: {int(absent.sum())} images the subject saw are missing "
            f"(e.g. NSD id {ids[absent][0]}); prepare the stimuli for this subject"
        )
    return rows.astype(np.int64)
