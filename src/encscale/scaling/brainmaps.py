"""Per-voxel maps of encoding accuracy and its data-scaling slope, as brain images.

Inputs: fit files (each voxel's Pearson r on the test split) and the subject's responses
file, a volume or a surface dataset (layouts: :mod:`encscale.contracts`). Outputs
(:func:`write_brain_maps`):

- a volume dataset (NSD, demo): a float32 NIfTI in the subject's native space, the
  responses file's ``mask`` shape and ``affine``, 0 outside the mask
  (:func:`write_volume_map`);
- a surface dataset (Algonauts 2023): per hemisphere a FreeSurfer ``.mgh`` over all
  fsaverage vertices, 0 off the challenge vertices (:func:`write_surface_maps`).

Their figures: :mod:`encscale.figures.brainmaps`.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np

from encscale.contracts import read_fit, read_responses
from encscale.data.algonauts import HEMIS, read_fsaverage_mask
from encscale.io import PathLike, atomic_path, check_finite, write_nifti
from encscale.scaling.laws import fit_loglinear

# --- per-voxel values ----------------------------------------------------------------------


def voxel_accuracy(fit_paths: Sequence[PathLike]) -> np.ndarray:
    """Mean test r over fits (e.g. the draws of one subject × model × size): (V,) float32."""
    if isinstance(fit_paths, str | os.PathLike):
        raise TypeError(f"voxel_accuracy takes a sequence of fit files, got one path: {fit_paths}")
    if len(fit_paths) == 0:
        raise ValueError("voxel_accuracy needs at least one fit file, got none")
    total = None
    first = None
    for path in fit_paths:
        r = read_fit(path, ["test_r"]).test_r.astype(np.float64)  # finite
        if total is None:
            total, first = r, path
        elif r.shape != total.shape:
            raise ValueError(
                f"{path}: test r of {r.shape[0]} voxels, but {first} has {total.shape[0]}"
            )
        else:
            total = total + r
    return (total / len(fit_paths)).astype(np.float32)


def voxel_slopes(fits_by_size: Mapping[int, Sequence[PathLike]]) -> np.ndarray:
    """Per voxel the least-squares slope b of r = a + b·log10(size): (V,) float32.

    ``fits_by_size``: training size (samples) → the fit files of its draws; r at a size is
    their mean test r (:func:`voxel_accuracy`). b is in r per decade of training data.
    """
    sizes = np.array(sorted(fits_by_size), dtype=np.float64)
    if np.unique(sizes).size < 2:
        raise ValueError(f"a slope needs at least 2 distinct training sizes, got {sizes.tolist()}")
    if (sizes <= 0).any():
        raise ValueError(f"training sizes must be positive, got {sizes.tolist()}")
    rows = []
    first = None
    for size in sorted(fits_by_size):
        paths = fits_by_size[size]
        if len(paths) == 0:
            raise ValueError(f"no fit files at training size {size}")
        r = voxel_accuracy(paths).astype(np.float64)
        if first is None:
            first = paths[0]
        elif r.shape != rows[0].shape:
            raise ValueError(
                f"{paths[0]}: test r of {r.shape[0]} voxels, but {first} has {rows[0].shape[0]}"
            )
        rows.append(r)
    _, slopes = fit_loglinear(sizes, np.stack(rows, axis=1))  # one curve per voxel
    return slopes.astype(np.float32)


def fits_by_size(fit_paths: Sequence[PathLike], sizes: Sequence[int]) -> dict[int, list[PathLike]]:
    """{size: its fit files}: ``fit_paths`` lists the draws of each training size in turn, in
    the order of ``sizes`` (as the workflow lists them), the same number at each size."""
    if len(sizes) == 0 or len(fit_paths) % len(sizes):
        raise ValueError(
            f"{len(fit_paths)} fit files do not split evenly over the training sizes {list(sizes)}"
        )
    per_size = len(fit_paths) // len(sizes)
    return {
        size: list(fit_paths[i * per_size : (i + 1) * per_size]) for i, size in enumerate(sizes)
    }


# --- brain images --------------------------------------------------------------------------


def write_volume_map(values: np.ndarray, responses_path: PathLike, out_path: PathLike) -> None:
    """Write (V,) voxel values as a float32 ``.nii.gz`` in the responses file's native space.

    The image has the shape of the file's ``mask`` (X × Y × Z) and its ``affine`` (mm); the
    values go to the mask's voxels in C order (the voxel columns' order), 0 elsewhere.
    """
    values = np.asarray(values)
    resp = read_responses(responses_path, optional=["volume", "surface"])
    if resp.mask is None:
        kind = "a surface dataset" if resp.hemisphere is not None else "not a volume dataset"
        raise ValueError(
            f"{responses_path}: no 'mask' dataset ({kind}: its columns are not voxels); "
            "use write_surface_maps for surface vertices"
        )
    mask, affine, ijk = resp.mask, resp.affine.astype(np.float64), resp.voxel_ijk
    if values.shape != (ijk.shape[0],):
        raise ValueError(
            f"{out_path}: values have shape {values.shape}, but {responses_path} has "
            f"{ijk.shape[0]} voxels"
        )
    check_finite(values, f"{out_path}: values")
    volume = np.zeros(mask.shape, dtype=np.float32)
    volume[mask] = values
    write_nifti(out_path, volume, affine)


def write_surface_maps(
    values: np.ndarray,
    responses_path: PathLike,
    fsaverage_masks: Sequence[PathLike],
    out_paths: Sequence[PathLike],
) -> None:
    """Write (V,) vertex values as one float32 ``.mgh`` per hemisphere over fsaverage.

    ``fsaverage_masks`` and ``out_paths``: (lh, rh). Each map is (n_fsaverage × 1 × 1): the
    hemisphere's challenge-vertex values (by the responses file's ``vertex``) at the mask's
    non-zero entries, in order, and 0 elsewhere. ``.mgz`` paths are gzipped.
    """
    if len(fsaverage_masks) != len(HEMIS) or len(out_paths) != len(HEMIS):
        raise ValueError(
            f"need one fsaverage mask and one output per hemisphere (lh, rh), got "
            f"{len(fsaverage_masks)} and {len(out_paths)}"
        )
    values = np.asarray(values)
    resp = read_responses(responses_path, optional=["surface"])
    if resp.hemisphere is None:
        raise ValueError(
            f"{responses_path}: no 'hemisphere' dataset (not a surface dataset); "
            "use write_volume_map for volume voxels"
        )
    hemisphere, vertex = resp.hemisphere, resp.vertex.astype(np.int64)
    counts = [
        int(resp.attrs.get(f"n_vertices_{h}", (hemisphere == i).sum())) for i, h in enumerate(HEMIS)
    ]
    if values.shape != hemisphere.shape:
        raise ValueError(
            f"values have shape {values.shape}, but {responses_path} has "
            f"{hemisphere.shape[0]} vertices"
        )
    check_finite(values, f"map values for {out_paths[0]} and {out_paths[1]}")
    for code, (hemi, mask_path, out_path) in enumerate(
        zip(HEMIS, fsaverage_masks, out_paths, strict=True)
    ):
        cols = hemisphere == code
        idx = vertex[cols]
        n = counts[code]
        if idx.size and (idx.min() < 0 or idx.max() >= n or np.unique(idx).size != idx.size):
            raise ValueError(
                f"{responses_path}: {hemi} 'vertex' indices must be distinct and in [0, {n})"
            )
        mask = read_fsaverage_mask(mask_path)
        if int(mask.sum()) != n:
            raise ValueError(
                f"{mask_path}: {int(mask.sum())} {hemi} vertices in the mask, but "
                f"{responses_path} has {n}"
            )
        full = np.zeros(mask.size, dtype=np.float32)
        full[np.flatnonzero(mask)[idx]] = values[cols]
        _write_mgh(out_path, full)


def _write_mgh(path: PathLike, data: np.ndarray) -> None:
    """Write (n,) values as an (n × 1 × 1) float32 MGH atomically (gzipped if ``.mgz``)."""
    img = nib.MGHImage(data.astype(np.float32).reshape(-1, 1, 1), np.eye(4))
    raw = img.to_bytes()
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        if Path(path).suffix == ".mgz":
            with gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0) as gz:
                gz.write(raw)
        else:
            f.write(raw)


# --- a subject's maps ----------------------------------------------------------------------


def write_brain_maps(
    accuracy_fits: Sequence[PathLike],
    slope_fits: Sequence[PathLike],
    sizes: Sequence[int],
    responses_path: PathLike,
    accuracy_out: PathLike | Sequence[PathLike],
    slope_out: PathLike | Sequence[PathLike],
    *,
    fsaverage_masks: Sequence[PathLike] | None = None,
) -> None:
    """Write a subject's two maps: the accuracy, mean ``test_r`` of ``accuracy_fits`` (the
    final model's draws, :func:`voxel_accuracy`), and the slope of r per decade of training
    data over ``slope_fits`` (the draws of each of ``sizes`` in turn: :func:`fits_by_size`,
    :func:`voxel_slopes`).

    Without ``fsaverage_masks``, each map is a volume (:func:`write_volume_map`) and each
    output one path; with them (lh, rh), surfaces (:func:`write_surface_maps`) and each output
    an (lh, rh) pair of paths.
    """
    maps = [
        (voxel_accuracy(accuracy_fits), accuracy_out),
        (voxel_slopes(fits_by_size(slope_fits, sizes)), slope_out),
    ]
    for values, out in maps:
        if fsaverage_masks is None:
            write_volume_map(values, responses_path, out)
        else:
            write_surface_maps(values, responses_path, list(fsaverage_masks), list(out))
