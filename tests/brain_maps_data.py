"""Small brain-map inputs for the tests: a volume mask and affine, responses files of a
volume and of a surface dataset, fit files, fsaverage vertex masks."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

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


def random_mask(seed: int = 0) -> np.ndarray:
    """A 6 × 7 × 5 mask with 60 True voxels."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(SHAPE, dtype=bool)
    mask.flat[rng.choice(mask.size, 60, replace=False)] = True
    return mask


def nonzero_values(n: int, seed: int = 1) -> np.ndarray:
    """(n,) float32 values with |v| in [0.1, 1], so none is 0."""
    rng = np.random.default_rng(seed)
    return (rng.uniform(0.1, 1.0, n) * rng.choice([-1.0, 1.0], n)).astype(np.float32)


def volume_responses(path: Path, mask: np.ndarray) -> Path:
    with h5py.File(path, "w") as f:
        f["mask"] = mask
        f["affine"] = AFFINE
        f["voxel_ijk"] = np.argwhere(mask).astype(np.int32)
        f["noise_ceiling"] = np.full(int(mask.sum()), 50.0, dtype=np.float32)
        f.attrs["subject"] = "subj01"
    return path


def surface_responses(path: Path) -> Path:
    with h5py.File(path, "w") as f:
        f["hemisphere"] = np.repeat(np.array([0, 1], dtype=np.uint8), [N_LH, N_RH])
        f["vertex"] = np.concatenate([np.arange(N_LH), np.arange(N_RH)]).astype(np.int32)
        f["noise_ceiling"] = np.full(N_LH + N_RH, 50.0, dtype=np.float32)
        f.attrs.update(subject="subj01", n_vertices_lh=N_LH, n_vertices_rh=N_RH)
    return path


def write_fit(path: Path, test_r: np.ndarray, size: int = 100, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f["test_r"] = np.asarray(test_r, dtype=np.float32)
        f.attrs.update(subject="subj01", model="m", size=size, seed=seed)
    return path


def fsaverage_mask(path: Path, n_true: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mask = np.zeros(N_FSAVERAGE, dtype=np.int64)
    mask[rng.choice(N_FSAVERAGE, n_true, replace=False)] = 1
    np.save(path, mask)
    return mask.astype(bool)


def surface_setup(tmp_path: Path) -> tuple[Path, list[Path], tuple[np.ndarray, np.ndarray]]:
    """A surface responses file, its (lh, rh) fsaverage masks' files and the masks."""
    resp = surface_responses(tmp_path / "surface.h5")
    masks = [tmp_path / "lh.all-vertices_fsaverage_space.npy"]
    masks.append(tmp_path / "rh.all-vertices_fsaverage_space.npy")
    lh = fsaverage_mask(masks[0], N_LH, seed=4)
    rh = fsaverage_mask(masks[1], N_RH, seed=5)
    return resp, masks, (lh, rh)
