"""Figures of the brain maps (:mod:`encscale.scaling.brainmaps`): axial slices of a volume map
(nilearn, native space, no template) or lateral views of both hemispheres' surface maps on
fsaverage meshes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
from nilearn import plotting

from encscale.data.algonauts import HEMIS, read_mgh_vector
from encscale.figures.style import plt, save_figure
from encscale.io import PathLike, require_file

N_CUTS = 7  # axial slices of a volume map figure
SURFACE_THRESHOLD = 1e-6  # |value| below which a surface vertex shows the background


def plot_brain_map(
    map_paths: Sequence[PathLike],
    out_paths: Sequence[PathLike],
    title: str,
    *,
    volume: bool,
    fsaverage_dir: PathLike | None = None,
) -> None:
    """The figure of one brain map: ``map_paths`` is one volume map (:func:`plot_volume_map`)
    or the (lh, rh) surface maps, drawn on ``fsaverage_dir``'s meshes
    (:func:`plot_surface_maps`)."""
    if volume:
        if len(map_paths) != 1:
            raise ValueError(f"a volume map is one file, got {len(map_paths)}: {list(map_paths)}")
        plot_volume_map(map_paths[0], out_paths, title)
    elif fsaverage_dir is None:
        raise ValueError(f"{title}: surface maps need an fsaverage_dir to draw them on")
    else:
        plot_surface_maps(map_paths, fsaverage_dir, out_paths, title)


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
    path = require_file(nifti_path, "volume map file")
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
    require_file(path, "surface mesh file")
    try:
        coords, faces = nib.freesurfer.read_geometry(path)
    except (OSError, EOFError, ValueError) as err:
        raise ValueError(
            f"{path}: cannot read surface mesh (not FreeSurfer geometry): {err}"
        ) from err
    return coords, faces
