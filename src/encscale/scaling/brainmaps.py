"""Per-voxel maps of encoding accuracy and its data-scaling slope, as brain images and figures.

Inputs: fit files (``test_r`` (V,) float32, Pearson r on the test split) and the subject's
responses file (:mod:`encscale.data.prepare` for volumes, :mod:`encscale.data.algonauts` for surface
vertices). Outputs:

- a volume dataset (NSD, demo): a float32 NIfTI in the subject's native space, the
  responses file's ``mask`` shape and ``affine``, 0 outside the mask
  (:func:`write_volume_map`, plotted by :func:`plot_volume_map`);
- a surface dataset (Algonauts 2023): per hemisphere a FreeSurfer ``.mgh`` over all
  fsaverage vertices, 0 off the challenge vertices (:func:`write_surface_maps`, plotted on
  fsaverage meshes by :func:`plot_surface_maps`).
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
from nilearn import plotting

from encscale.data.algonauts import HEMIS, read_fsaverage_mask, read_mgh_vector
from encscale.figures.images import plt, save_figure
from encscale.io import atomic_path, check_finite, open_h5, read_dataset, write_nifti
from encscale.scaling.laws import fit_loglinear

PathLike = str | os.PathLike

N_CUTS = 7  # axial slices of a volume map figure
SURFACE_THRESHOLD = 1e-6  # |value| below which a surface vertex shows the background


# --- per-voxel values ----------------------------------------------------------------------


def voxel_accuracy(fit_paths: Sequence[PathLike]) -> np.ndarray:
    """Mean ``test_r`` over fits (e.g. the draws of one subject × model × size): (V,) float32."""
    if isinstance(fit_paths, str | os.PathLike):
        raise TypeError(f"voxel_accuracy takes a sequence of fit files, got one path: {fit_paths}")
    if len(fit_paths) == 0:
        raise ValueError("voxel_accuracy needs at least one fit file, got none")
    total = None
    first = None
    for path in fit_paths:
        with open_h5(path, "fit") as fit:
            r = read_dataset(fit, "test_r", ndim=1).astype(np.float64)
        check_finite(r, f"{path}: test_r")
        if total is None:
            total, first = r, path
        elif r.shape != total.shape:
            raise ValueError(
                f"{path}: test_r has {r.shape[0]} voxels, but {first} has {total.shape[0]}"
            )
        else:
            total = total + r
    return (total / len(fit_paths)).astype(np.float32)


def voxel_slopes(fits_by_size: Mapping[int, Sequence[PathLike]]) -> np.ndarray:
    """Per voxel the least-squares slope b of r = a + b·log10(size): (V,) float32.

    ``fits_by_size``: training size (samples) → the fit files of its draws; r at a size is
    their mean ``test_r`` (:func:`voxel_accuracy`). b is in r per decade of training data.
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
                f"{paths[0]}: test_r has {r.shape[0]} voxels, but {first} has {rows[0].shape[0]}"
            )
        rows.append(r)
    _, slopes = fit_loglinear(sizes, np.stack(rows, axis=1))  # one curve per voxel
    return slopes.astype(np.float32)


# --- brain images --------------------------------------------------------------------------


def write_volume_map(values: np.ndarray, responses_path: PathLike, out_path: PathLike) -> None:
    """Write (V,) voxel values as a float32 ``.nii.gz`` in the responses file's native space.

    The image has the shape of the file's ``mask`` (X × Y × Z) and its ``affine`` (mm); the
    values go to the mask's voxels in C order (the voxel columns' order), 0 elsewhere.
    """
    values = np.asarray(values)
    with open_h5(responses_path, "responses") as resp:
        if "mask" not in resp:
            kind = "a surface dataset" if "hemisphere" in resp else "not a volume dataset"
            raise ValueError(
                f"{responses_path}: no 'mask' dataset ({kind}: its columns are not voxels); "
                "use write_surface_maps for surface vertices"
            )
        mask = read_dataset(resp, "mask", ndim=3).astype(bool)
        affine = read_dataset(resp, "affine", ndim=2).astype(np.float64)
        ijk = read_dataset(resp, "voxel_ijk", ndim=2)
    if affine.shape != (4, 4):
        raise ValueError(f"{responses_path}: affine has shape {affine.shape}, expected 4 × 4")
    if not np.array_equal(np.argwhere(mask), ijk):
        raise ValueError(
            f"{responses_path}: voxel_ijk ({ijk.shape[0]} voxels) does not list the mask's "
            f"{int(mask.sum())} voxels in C order"
        )
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
    with open_h5(responses_path, "responses") as resp:
        if "hemisphere" not in resp:
            raise ValueError(
                f"{responses_path}: no 'hemisphere' dataset (not a surface dataset); "
                "use write_volume_map for volume voxels"
            )
        hemisphere = read_dataset(resp, "hemisphere", ndim=1)
        vertex = read_dataset(resp, "vertex", ndim=1).astype(np.int64)
        counts = [
            int(resp.attrs.get(f"n_vertices_{h}", (hemisphere == i).sum()))
            for i, h in enumerate(HEMIS)
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


# --- figures -------------------------------------------------------------------------------


def volume_cut_coords(img: nib.Nifti1Image, n: int = N_CUTS) -> list[float]:
    """Up to ``n`` evenly spaced world z (mm) through the non-zero voxels (all if none)."""
    data = np.asarray(img.dataobj)
    ijk = np.argwhere(data != 0)
    if ijk.size == 0:
        ijk = np.argwhere(np.ones(data.shape[:3], dtype=bool))
    z = nib.affines.apply_affine(img.affine, ijk)[:, 2]
    n = min(n, np.unique(np.round(z, 3)).size)
    return [float(c) for c in np.linspace(z.min(), z.max(), n)]


def plot_volume_map(
    nifti_path: PathLike,
    out_paths: Sequence[PathLike],
    title: str,
    *,
    symmetric: bool = True,
    vmax: float | None = None,
) -> None:
    """Axial slices of a native-space volume map (no template), saved to each of ``out_paths``.

    ``symmetric``: a diverging colour scale centred on 0 (e.g. slopes); else a sequential
    scale from the minimum (e.g. accuracies). ``vmax``: the scale's top (default: data max).
    """
    path = Path(nifti_path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: volume map file is missing")
    try:
        img = nib.load(path)
        img.get_fdata()
    except (OSError, EOFError, ValueError, nib.filebasedimages.ImageFileError) as err:
        raise ValueError(f"{path}: cannot read volume map (truncated or not NIfTI): {err}") from err
    fig = plt.figure(figsize=(14, 2.8))
    plotting.plot_stat_map(
        img,
        bg_img=None,
        display_mode="z",
        cut_coords=volume_cut_coords(img),
        colorbar=True,
        title=title,
        figure=fig,
        cmap="RdBu_r" if symmetric else "viridis",
        symmetric_cbar=symmetric,
        vmax=vmax,
    )
    save_figure(fig, *out_paths)


def plot_surface_maps(
    mgh_paths: Sequence[PathLike],
    fsaverage_dir: PathLike,
    out_paths: Sequence[PathLike],
    title: str,
) -> None:
    """Lateral views of both hemispheres' maps on ``fsaverage_dir/surf/{lh,rh}.inflated``.

    ``mgh_paths``: (lh, rh) maps over the meshes' vertices (:func:`write_surface_maps`);
    shading from ``surf/{lh,rh}.sulc`` where present. One colour scale, symmetric about 0.
    """
    if len(mgh_paths) != len(HEMIS):
        raise ValueError(f"need one map per hemisphere (lh, rh), got {len(mgh_paths)}")
    surf = Path(fsaverage_dir) / "surf"
    layers = []
    for hemi, mgh_path in zip(HEMIS, mgh_paths, strict=True):
        values = read_mgh_vector(mgh_path, f"{hemi} surface map")
        mesh = _read_mesh(surf / f"{hemi}.inflated")
        if mesh[0].shape[0] != values.size:
            raise ValueError(
                f"{mgh_path}: {values.size} vertices, but the mesh {surf / f'{hemi}.inflated'} "
                f"has {mesh[0].shape[0]}"
            )
        sulc_path = surf / f"{hemi}.sulc"
        sulc = None
        if sulc_path.exists():
            sulc = nib.freesurfer.read_morph_data(sulc_path)
            if sulc.size != values.size:
                raise ValueError(
                    f"{sulc_path}: {sulc.size} vertices, but the map {mgh_path} has {values.size}"
                )
        layers.append((hemi, values, mesh, sulc))
    top = max(float(np.abs(values).max()) for _, values, _, _ in layers) or 1.0
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), subplot_kw={"projection": "3d"})
    for ax, (hemi, values, mesh, sulc) in zip(axes, layers, strict=True):
        plotting.plot_surf_stat_map(
            surf_mesh=list(mesh),
            stat_map=values,
            bg_map=sulc,
            hemi="left" if hemi == "lh" else "right",
            view="lateral",
            cmap="RdBu_r",
            colorbar=hemi == HEMIS[-1],
            threshold=SURFACE_THRESHOLD,
            vmin=-top,
            vmax=top,
            symmetric_cbar=True,
            title=hemi,
            axes=ax,
            figure=fig,
        )
        for mesh_faces in ax.collections:  # a raster mesh keeps a full-size SVG small
            mesh_faces.set_rasterized(True)
    fig.suptitle(title)
    save_figure(fig, *out_paths)


def _read_mesh(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A FreeSurfer surface: coordinates (n × 3, mm) and triangles (m × 3), naming the file."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: surface mesh file is missing")
    try:
        coords, faces = nib.freesurfer.read_geometry(path)
    except (OSError, EOFError, ValueError) as err:
        raise ValueError(
            f"{path}: cannot read surface mesh (not FreeSurfer geometry): {err}"
        ) from err
    return coords, faces
