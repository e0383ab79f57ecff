"""Per-voxel accuracy and slope maps: values and NIfTI/MGH images."""

from __future__ import annotations

import h5py
import nibabel as nib
import numpy as np
import pytest
from brain_maps_data import (
    AFFINE,
    N_FSAVERAGE,
    N_LH,
    N_RH,
    SHAPE,
    fsaverage_mask,
    nonzero_values,
    random_mask,
    surface_responses,
    surface_setup,
    volume_responses,
    write_fit,
)

from encscale.scaling import brainmaps

# --- per-voxel values ----------------------------------------------------------------------


def test_voxel_accuracy_is_the_mean_over_fits(tmp_path):
    rng = np.random.default_rng(2)
    rs = rng.uniform(-0.2, 0.8, (3, 50)).astype(np.float32)
    paths = [write_fit(tmp_path / f"n100_s{i}.h5", r, seed=i) for i, r in enumerate(rs)]
    acc = brainmaps.voxel_accuracy(paths)
    assert acc.dtype == np.float32 and acc.shape == (50,)
    np.testing.assert_allclose(acc, rs.astype(np.float64).mean(axis=0), rtol=0, atol=1e-7)
    np.testing.assert_array_equal(brainmaps.voxel_accuracy(paths[1:2]), rs[1])


def test_voxel_accuracy_errors(tmp_path):
    a = write_fit(tmp_path / "a.h5", np.zeros(50))
    b = write_fit(tmp_path / "b.h5", np.zeros(49))
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
            write_fit(tmp_path / f"n{size}_s{seed}.h5", r + sign * e, size, seed)
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
    small = write_fit(tmp_path / "n100_s0.h5", np.zeros(10))
    big = write_fit(tmp_path / "n200_s0.h5", np.zeros(11))
    with pytest.raises(ValueError, match="n200_s0.h5.*11 voxels.*n100_s0.h5"):
        brainmaps.voxel_slopes({100: [small], 200: [big]})


# --- volume maps ---------------------------------------------------------------------------


def test_write_volume_map_round_trip(tmp_path):
    mask = random_mask()
    resp = volume_responses(tmp_path / "resp.h5", mask)
    values = nonzero_values(int(mask.sum()))
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
    mask = random_mask()
    resp = volume_responses(tmp_path / "resp.h5", mask)
    n = int(mask.sum())
    out = tmp_path / "map.nii.gz"
    surface = surface_responses(tmp_path / "surface.h5")
    with pytest.raises(ValueError, match="surface.h5.*surface dataset.*write_surface_maps"):
        brainmaps.write_volume_map(nonzero_values(N_LH + N_RH), surface, out)
    with pytest.raises(ValueError, match=f"resp.h5 has {n} voxels"):
        brainmaps.write_volume_map(nonzero_values(n - 1), resp, out)
    nan = nonzero_values(n)
    nan[5] = np.nan
    with pytest.raises(ValueError, match="1 non-finite"):
        brainmaps.write_volume_map(nan, resp, out)
    broken = tmp_path / "broken.h5"
    broken.write_bytes(resp.read_bytes()[:200])
    with pytest.raises(OSError, match="broken.h5.*truncated or not HDF5"):
        brainmaps.write_volume_map(nonzero_values(n), broken, out)
    shuffled = tmp_path / "shuffled.h5"
    volume_responses(shuffled, mask)
    with h5py.File(shuffled, "a") as f:
        f["voxel_ijk"][...] = f["voxel_ijk"][()][::-1]
    with pytest.raises(ValueError, match="shuffled.h5.*C order"):
        brainmaps.write_volume_map(nonzero_values(n), shuffled, out)
    assert not out.exists()


# --- surface maps --------------------------------------------------------------------------


def test_write_surface_maps(tmp_path):
    resp, masks, (lh, rh) = surface_setup(tmp_path)
    values = nonzero_values(N_LH + N_RH)
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
    resp, masks, _ = surface_setup(tmp_path)
    outs = [tmp_path / "lh.mgh", tmp_path / "rh.mgh"]
    wrong = tmp_path / "rh.wrong.npy"
    fsaverage_mask(wrong, N_RH + 1, seed=6)
    with pytest.raises(ValueError, match=f"rh.wrong.npy: {N_RH + 1} rh vertices.*has {N_RH}"):
        brainmaps.write_surface_maps(nonzero_values(N_LH + N_RH), resp, [masks[0], wrong], outs)
    with pytest.raises(ValueError, match=f"surface.h5 has {N_LH + N_RH} vertices"):
        brainmaps.write_surface_maps(nonzero_values(N_LH), resp, masks, outs)
    volume = volume_responses(tmp_path / "volume.h5", random_mask())
    with pytest.raises(ValueError, match="volume.h5.*write_volume_map"):
        brainmaps.write_surface_maps(nonzero_values(60), volume, masks, outs)


# --- a subject's maps ----------------------------------------------------------------------

SIZES = [100, 400, 1600]


def planted_fits(tmp_path, n: int) -> tuple[list, list, np.ndarray, np.ndarray]:
    """Fit files of a final model (3 draws) and of each of SIZES (2 draws, listed size by size
    as the workflow lists them), with r = a + b·log10(size) ± e per voxel: their hand-made
    accuracy (mean of the final draws) and slope (least squares over the sizes' means)."""
    rng = np.random.default_rng(7)
    a, b = rng.uniform(-0.1, 0.3, n), rng.uniform(-0.05, 0.15, n)
    final = rng.uniform(-0.2, 0.8, (3, n))
    accuracy_fits = [write_fit(tmp_path / "final" / f"s{i}.h5", r) for i, r in enumerate(final)]
    slope_fits, means = [], []
    for size in SIZES:
        e = rng.normal(0, 0.05, n)  # a draw's noise, different at every size
        draws = [a + b * np.log10(size) + e, a + b * np.log10(size) - 3 * e]
        means.append(np.mean(np.asarray(draws, dtype=np.float32), axis=0))
        slope_fits += [
            write_fit(tmp_path / "data" / f"n{size}_s{seed}.h5", r, size, seed)
            for seed, r in enumerate(draws)
        ]
    x = np.log10(SIZES)
    slope = np.polyfit(x, np.asarray(means, dtype=np.float64), 1)[0]
    return accuracy_fits, slope_fits, final.astype(np.float32).mean(axis=0), slope


def test_fits_by_size_splits_the_draws_of_each_size():
    paths = ["n100_s0", "n100_s1", "n400_s0", "n400_s1", "n1600_s0", "n1600_s1"]
    assert brainmaps.fits_by_size(paths, SIZES) == {
        100: ["n100_s0", "n100_s1"],
        400: ["n400_s0", "n400_s1"],
        1600: ["n1600_s0", "n1600_s1"],
    }
    with pytest.raises(ValueError, match=r"5 fit files do not split evenly .*\[100, 400, 1600\]"):
        brainmaps.fits_by_size(paths[:5], SIZES)


def test_write_brain_maps_volume(tmp_path):
    mask = random_mask()
    n = int(mask.sum())
    resp = volume_responses(tmp_path / "resp.h5", mask)
    accuracy_fits, slope_fits, accuracy, slope = planted_fits(tmp_path, n)
    outs = tmp_path / "maps" / "accuracy.nii.gz", tmp_path / "maps" / "slope.nii.gz"
    brainmaps.write_brain_maps(accuracy_fits, slope_fits, SIZES, resp, *outs)
    maps = [np.asarray(nib.load(out).dataobj) for out in outs]
    np.testing.assert_allclose(maps[0][mask], accuracy, rtol=0, atol=1e-6)
    np.testing.assert_allclose(maps[1][mask], slope, rtol=0, atol=1e-5)
    assert (maps[0][~mask] == 0).all() and (maps[1][~mask] == 0).all()


def test_write_brain_maps_surfaces(tmp_path):
    resp, masks, (lh, rh) = surface_setup(tmp_path)
    accuracy_fits, slope_fits, accuracy, slope = planted_fits(tmp_path, N_LH + N_RH)
    accuracy_out = [tmp_path / "maps" / f"{h}.accuracy.mgh" for h in ("lh", "rh")]
    slope_out = [tmp_path / "maps" / f"{h}.slope.mgh" for h in ("lh", "rh")]
    brainmaps.write_brain_maps(
        accuracy_fits, slope_fits, SIZES, resp, accuracy_out, slope_out, fsaverage_masks=masks
    )
    for outs, values in ((accuracy_out, accuracy), (slope_out, slope)):
        for out, mask, part in zip(outs, (lh, rh), (values[:N_LH], values[N_LH:]), strict=True):
            data = np.asarray(nib.load(out).dataobj).ravel()
            np.testing.assert_allclose(data[mask], part, rtol=0, atol=1e-5)
            assert (data[~mask] == 0).all()
