"""The brain maps' figures: volume slices and fsaverage surfaces."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from brain_maps_data import (
    N_FSAVERAGE,
    N_LH,
    N_RH,
    nonzero_values,
    random_mask,
    surface_setup,
    volume_responses,
)

from encscale.figures import brainmaps
from encscale.scaling.brainmaps import write_surface_maps, write_volume_map


def grid_mesh(nx: int, ny: int) -> tuple[np.ndarray, np.ndarray]:
    """A bumpy nx × ny grid of vertices (mm) split into 2·(nx−1)·(ny−1) triangles."""
    x, y = np.meshgrid(np.arange(nx, dtype=np.float64), np.arange(ny, dtype=np.float64))
    z = np.sin(x) * np.cos(y)
    coords = np.column_stack([x.ravel(), y.ravel(), z.ravel()]) * 10.0
    idx = np.arange(nx * ny).reshape(ny, nx)
    a, b = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel()
    c, d = idx[1:, :-1].ravel(), idx[1:, 1:].ravel()
    faces = np.concatenate([np.column_stack([a, b, d]), np.column_stack([a, d, c])])
    return coords, faces.astype(np.int32)


def fsaverage_dir(root: Path, n_vertices: int, sulc: bool) -> Path:
    """``root/surf/{lh,rh}.inflated`` grid meshes of n_vertices (8 wide); lh.sulc if asked."""
    (root / "surf").mkdir(parents=True)
    coords, faces = grid_mesh(8, n_vertices // 8)
    for hemi, shift in (("lh", -100.0), ("rh", 100.0)):
        nib.freesurfer.write_geometry(root / "surf" / f"{hemi}.inflated", coords + shift, faces)
    if sulc:
        nib.freesurfer.write_morph_data(root / "surf" / "lh.sulc", coords[:, 2].astype(np.float32))
    return root


def test_plot_volume_map(tmp_path):
    mask = random_mask()
    resp = volume_responses(tmp_path / "resp.h5", mask)
    nifti = tmp_path / "slope.nii.gz"
    write_volume_map(nonzero_values(int(mask.sum())), resp, nifti)
    cuts = brainmaps.volume_cut_coords(nib.load(nifti))
    z = -17.9 + 1.8 * np.unique(np.argwhere(mask)[:, 2])
    assert len(cuts) == min(7, z.size)
    np.testing.assert_allclose([cuts[0], cuts[-1]], [z.min(), z.max()])
    png, svg = tmp_path / "fig" / "slope.png", tmp_path / "fig" / "slope.svg"
    brainmaps.plot_volume_map(nifti, [png, svg], "slope, subj01")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 10_000
    assert "<svg" in svg.read_text()
    acc_png = tmp_path / "acc.png"
    brainmaps.plot_volume_map(nifti, [acc_png], "accuracy", symmetric=False, vmax=1.0)
    assert acc_png.stat().st_size > 10_000


def test_plot_surface_maps(tmp_path):
    resp, masks, _ = surface_setup(tmp_path)
    mghs = [tmp_path / "lh.slope.mgh", tmp_path / "rh.slope.mgh"]
    write_surface_maps(nonzero_values(N_LH + N_RH), resp, masks, mghs)
    fsaverage = fsaverage_dir(tmp_path / "fsaverage", N_FSAVERAGE, sulc=True)
    png, svg = tmp_path / "fig" / "surface.png", tmp_path / "fig" / "surface.svg"
    brainmaps.plot_surface_maps(mghs, fsaverage, [png, svg], "slope, subj01")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 10_000
    text = svg.read_text()
    assert "<svg" in text and text.count("<image") >= 2  # both meshes rasterised in the SVG

    with pytest.raises(FileNotFoundError, match=r"nowhere/surf/lh\.inflated"):
        brainmaps.plot_surface_maps(mghs, tmp_path / "nowhere", [png], "x")
    small = fsaverage_dir(tmp_path / "small", 32, sulc=False)
    with pytest.raises(ValueError, match=f"lh.slope.mgh: {N_FSAVERAGE} vertices.*has 32"):
        brainmaps.plot_surface_maps(mghs, small, [png], "x")


def test_plot_brain_map_draws_a_volume_or_the_surfaces(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(brainmaps, "plot_volume_map", lambda *a: calls.append(("volume", a)))
    monkeypatch.setattr(brainmaps, "plot_surface_maps", lambda *a: calls.append(("surface", a)))
    out = ("a.png", "a.svg")
    brainmaps.plot_brain_map(["slope.nii.gz"], out, "slope", volume=True, fsaverage_dir="fs")
    brainmaps.plot_brain_map(["lh.mgh", "rh.mgh"], out, "slope", volume=False, fsaverage_dir="fs")
    assert calls == [
        ("volume", ("slope.nii.gz", out, "slope")),
        ("surface", (["lh.mgh", "rh.mgh"], "fs", out, "slope")),
    ]
    with pytest.raises(ValueError, match="a volume map is one file, got 2"):
        brainmaps.plot_brain_map(["lh.mgh", "rh.mgh"], out, "slope", volume=True)
    with pytest.raises(ValueError, match="slope: surface maps need an fsaverage_dir"):
        brainmaps.plot_brain_map(["lh.mgh", "rh.mgh"], out, "slope", volume=False)
