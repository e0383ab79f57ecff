"""Per-voxel accuracy and slope maps: values, NIfTI/MGH images and their figures."""

from __future__ import annotations

from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pytest

from encscale.scaling import brainmaps

SHAPE = (6, 7, 5)
AFFINE = np.array(
    [
        [-1.8, 0.0, 0.0, 44.5],
        [0.0, 1.8, 0.0, -61.2],
        [0.0, 0.0, 1.8, -17.9],
        [0.0, 0.0, 0.0, 1.0],
    ]
)
N_LH, N_RH, N_FSAVERAGE = 12, 9, 40


def _mask(seed: int = 0) -> np.ndarray:
    """A 6 × 7 × 5 mask with 60 True voxels."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(SHAPE, dtype=bool)
    mask.flat[rng.choice(mask.size, 60, replace=False)] = True
    return mask


def _values(n: int, seed: int = 1) -> np.ndarray:
    """(n,) float32 values with |v| in [0.1, 1], so none is 0."""
    rng = np.random.default_rng(seed)
    return (rng.uniform(0.1, 1.0, n) * rng.choice([-1.0, 1.0], n)).astype(np.float32)


def _volume_responses(path: Path, mask: np.ndarray) -> Path:
    with h5py.File(path, "w") as f:
        f["mask"] = mask
        f["affine"] = AFFINE
        f["voxel_ijk"] = np.argwhere(mask).astype(np.int32)
        f["noise_ceiling"] = np.full(int(mask.sum()), 50.0, dtype=np.float32)
        f.attrs["subject"] = "subj01"
    return path


def _surface_responses(path: Path) -> Path:
    with h5py.File(path, "w") as f:
        f["hemisphere"] = np.repeat(np.array([0, 1], dtype=np.uint8), [N_LH, N_RH])
        f["vertex"] = np.concatenate([np.arange(N_LH), np.arange(N_RH)]).astype(np.int32)
        f["noise_ceiling"] = np.full(N_LH + N_RH, 50.0, dtype=np.float32)
        f.attrs.update(subject="subj01", n_vertices_lh=N_LH, n_vertices_rh=N_RH)
    return path


def _fit(path: Path, test_r: np.ndarray, size: int = 100, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f["test_r"] = np.asarray(test_r, dtype=np.float32)
        f.attrs.update(subject="subj01", model="m", size=size, seed=seed)
    return path


def _fsaverage_mask(path: Path, n_true: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mask = np.zeros(N_FSAVERAGE, dtype=np.int64)
    mask[rng.choice(N_FSAVERAGE, n_true, replace=False)] = 1
    np.save(path, mask)
    return mask.astype(bool)


def _grid_mesh(nx: int, ny: int) -> tuple[np.ndarray, np.ndarray]:
    """A bumpy nx × ny grid of vertices (mm) split into 2·(nx−1)·(ny−1) triangles."""
    x, y = np.meshgrid(np.arange(nx, dtype=np.float64), np.arange(ny, dtype=np.float64))
    z = np.sin(x) * np.cos(y)
    coords = np.column_stack([x.ravel(), y.ravel(), z.ravel()]) * 10.0
    idx = np.arange(nx * ny).reshape(ny, nx)
    a, b = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel()
    c, d = idx[1:, :-1].ravel(), idx[1:, 1:].ravel()
    faces = np.concatenate([np.column_stack([a, b, d]), np.column_stack([a, d, c])])
    return coords, faces.astype(np.int32)


# --- per-voxel values ----------------------------------------------------------------------


def test_voxel_accuracy_is_the_mean_over_fits(tmp_path):
    rng = np.random.default_rng(2)
    rs = rng.uniform(-0.2, 0.8, (3, 50)).astype(np.float32)
    paths = [_fit(tmp_path / f"n100_s{i}.h5", r, seed=i) for i, r in enumerate(rs)]
    acc = brainmaps.voxel_accuracy(paths)
    assert acc.dtype == np.float32 and acc.shape == (50,)
    np.testing.assert_allclose(acc, rs.astype(np.float64).mean(axis=0), rtol=0, atol=1e-7)
    np.testing.assert_array_equal(brainmaps.voxel_accuracy(paths[1:2]), rs[1])


def test_voxel_accuracy_errors(tmp_path):
    a = _fit(tmp_path / "a.h5", np.zeros(50))
    b = _fit(tmp_path / "b.h5", np.zeros(49))
    with pytest.raises(ValueError, match="b.h5.*49 voxels.*a.h5.*50"):
        brainmaps.voxel_accuracy([a, b])
    with pytest.raises(ValueError, match="at least one"):
        brainmaps.voxel_accuracy([])


def test_voxel_slopes_recover_planted_slopes(tmp_path):
    rng = np.random.default_rng(3)
    n_vox = 40
    a = rng.uniform(-0.1, 0.3, n_vox)
    b = rng.uniform(-0.05, 0.15, n_vox)
    fits = {}
    for size in (100, 200, 400, 800):
        e = rng.normal(0, 0.05, n_vox)  # draw noise, +e and −e: zero mean over the draws
        r = a + b * np.log10(size)
        fits[size] = [
            _fit(tmp_path / f"n{size}_s{seed}.h5", r + sign * e, size, seed)
            for seed, sign in enumerate((1.0, -1.0))
        ]
    slopes = brainmaps.voxel_slopes(fits)
    assert slopes.dtype == np.float32 and slopes.shape == (n_vox,)
    np.testing.assert_allclose(slopes, b, rtol=0, atol=1e-5)
    # two sizes: the slope is the difference quotient
    two = brainmaps.voxel_slopes({100: fits[100], 800: fits[800]})
    np.testing.assert_allclose(two, b, rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="at least 2 distinct"):
        brainmaps.voxel_slopes({100: fits[100]})


def test_voxel_slopes_mismatched_sizes(tmp_path):
    small = _fit(tmp_path / "n100_s0.h5", np.zeros(10))
    big = _fit(tmp_path / "n200_s0.h5", np.zeros(11))
    with pytest.raises(ValueError, match="n200_s0.h5.*11 voxels.*n100_s0.h5"):
        brainmaps.voxel_slopes({100: [small], 200: [big]})


# --- volume maps ---------------------------------------------------------------------------


def test_write_volume_map_round_trip(tmp_path):
    mask = _mask()
    resp = _volume_responses(tmp_path / "resp.h5", mask)
    values = _values(int(mask.sum()))
    out = tmp_path / "maps" / "slope.nii.gz"
    brainmaps.write_volume_map(values, resp, out)
    img = nib.load(out)
    assert img.shape == SHAPE
    assert np.allclose(img.affine, AFFINE)
    assert img.get_data_dtype() == np.float32
    data = np.asarray(img.dataobj)
    ijk = np.argwhere(mask)
    np.testing.assert_array_equal(data[tuple(ijk.T)], values)
    np.testing.assert_array_equal(data != 0, mask)
    assert (data[~mask] == 0).all()
    # a voxel's world position comes from the affine: the first voxel of the mask
    i, j, k = ijk[0]
    np.testing.assert_allclose(
        nib.affines.apply_affine(img.affine, ijk[0]),
        [44.5 - 1.8 * i, -61.2 + 1.8 * j, -17.9 + 1.8 * k],
    )
    # reproducible bytes
    again = tmp_path / "again.nii.gz"
    brainmaps.write_volume_map(values, resp, again)
    assert out.read_bytes() == again.read_bytes()


def test_write_volume_map_bad_input(tmp_path):
    mask = _mask()
    resp = _volume_responses(tmp_path / "resp.h5", mask)
    n = int(mask.sum())
    out = tmp_path / "map.nii.gz"
    surface = _surface_responses(tmp_path / "surface.h5")
    with pytest.raises(ValueError, match="surface.h5.*surface dataset.*write_surface_maps"):
        brainmaps.write_volume_map(_values(N_LH + N_RH), surface, out)
    with pytest.raises(ValueError, match=f"resp.h5 has {n} voxels"):
        brainmaps.write_volume_map(_values(n - 1), resp, out)
    nan = _values(n)
    nan[5] = np.nan
    with pytest.raises(ValueError, match="1 non-finite"):
        brainmaps.write_volume_map(nan, resp, out)
    broken = tmp_path / "broken.h5"
    broken.write_bytes(resp.read_bytes()[:200])
    with pytest.raises(OSError, match="broken.h5.*truncated or not HDF5"):
        brainmaps.write_volume_map(_values(n), broken, out)
    shuffled = tmp_path / "shuffled.h5"
    _volume_responses(shuffled, mask)
    with h5py.File(shuffled, "a") as f:
        f["voxel_ijk"][...] = f["voxel_ijk"][()][::-1]
    with pytest.raises(ValueError, match="shuffled.h5.*C order"):
        brainmaps.write_volume_map(_values(n), shuffled, out)
    assert not out.exists()


def test_plot_volume_map(tmp_path):
    mask = _mask()
    resp = _volume_responses(tmp_path / "resp.h5", mask)
    nifti = tmp_path / "slope.nii.gz"
    brainmaps.write_volume_map(_values(int(mask.sum())), resp, nifti)
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


# --- surface maps --------------------------------------------------------------------------


def _surface_setup(tmp_path: Path):
    resp = _surface_responses(tmp_path / "surface.h5")
    masks = [tmp_path / "lh.all-vertices_fsaverage_space.npy"]
    masks.append(tmp_path / "rh.all-vertices_fsaverage_space.npy")
    lh = _fsaverage_mask(masks[0], N_LH, seed=4)
    rh = _fsaverage_mask(masks[1], N_RH, seed=5)
    return resp, masks, (lh, rh)


def test_write_surface_maps(tmp_path):
    resp, masks, (lh, rh) = _surface_setup(tmp_path)
    values = _values(N_LH + N_RH)
    outs = [tmp_path / "maps" / "lh.slope.mgh", tmp_path / "maps" / "rh.slope.mgh"]
    brainmaps.write_surface_maps(values, resp, masks, outs)
    for out, mask, hemi_values in zip(outs, (lh, rh), (values[:N_LH], values[N_LH:]), strict=True):
        img = nib.load(out)
        assert isinstance(img, nib.MGHImage)
        assert img.shape == (N_FSAVERAGE, 1, 1)
        dtype = img.get_data_dtype()  # MGH is big-endian
        assert dtype.kind == "f" and dtype.itemsize == 4
        data = np.asarray(img.dataobj).ravel()
        np.testing.assert_array_equal(data[mask], hemi_values)
        assert (data[~mask] == 0).all()
    # .mgz: the same values, gzipped
    mgz = [tmp_path / "lh.slope.mgz", tmp_path / "rh.slope.mgz"]
    brainmaps.write_surface_maps(values, resp, masks, mgz)
    assert mgz[0].read_bytes()[:2] == b"\x1f\x8b"
    np.testing.assert_array_equal(nib.load(mgz[1]).get_fdata(), nib.load(outs[1]).get_fdata())


def test_write_surface_maps_bad_input(tmp_path):
    resp, masks, _ = _surface_setup(tmp_path)
    outs = [tmp_path / "lh.mgh", tmp_path / "rh.mgh"]
    wrong = tmp_path / "rh.wrong.npy"
    _fsaverage_mask(wrong, N_RH + 1, seed=6)
    with pytest.raises(ValueError, match=f"rh.wrong.npy: {N_RH + 1} rh vertices.*has {N_RH}"):
        brainmaps.write_surface_maps(_values(N_LH + N_RH), resp, [masks[0], wrong], outs)
    with pytest.raises(ValueError, match=f"surface.h5 has {N_LH + N_RH} vertices"):
        brainmaps.write_surface_maps(_values(N_LH), resp, masks, outs)
    volume = _volume_responses(tmp_path / "volume.h5", _mask())
    with pytest.raises(ValueError, match="volume.h5.*write_volume_map"):
        brainmaps.write_surface_maps(_values(60), volume, masks, outs)


def _fsaverage_dir(root: Path, n_vertices: int, sulc: bool) -> Path:
    """``root/surf/{lh,rh}.inflated`` grid meshes of n_vertices (8 wide); lh.sulc if asked."""
    (root / "surf").mkdir(parents=True)
    coords, faces = _grid_mesh(8, n_vertices // 8)
    for hemi, shift in (("lh", -100.0), ("rh", 100.0)):
        nib.freesurfer.write_geometry(root / "surf" / f"{hemi}.inflated", coords + shift, faces)
    if sulc:
        nib.freesurfer.write_morph_data(root / "surf" / "lh.sulc", coords[:, 2].astype(np.float32))
    return root


def test_plot_surface_maps(tmp_path):
    resp, masks, _ = _surface_setup(tmp_path)
    mghs = [tmp_path / "lh.slope.mgh", tmp_path / "rh.slope.mgh"]
    brainmaps.write_surface_maps(_values(N_LH + N_RH), resp, masks, mghs)
    fsaverage = _fsaverage_dir(tmp_path / "fsaverage", N_FSAVERAGE, sulc=True)
    png, svg = tmp_path / "fig" / "surface.png", tmp_path / "fig" / "surface.svg"
    brainmaps.plot_surface_maps(mghs, fsaverage, [png, svg], "slope, subj01")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 10_000
    text = svg.read_text()
    assert "<svg" in text and text.count("<image") >= 2  # both meshes rasterised in the SVG

    with pytest.raises(FileNotFoundError, match=r"nowhere/surf/lh\.inflated"):
        brainmaps.plot_surface_maps(mghs, tmp_path / "nowhere", [png], "x")
    small = _fsaverage_dir(tmp_path / "small", 32, sulc=False)
    with pytest.raises(ValueError, match=f"lh.slope.mgh: {N_FSAVERAGE} vertices.*has 32"):
        brainmaps.plot_surface_maps(mghs, small, [png], "x")
