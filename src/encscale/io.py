"""Atomic outputs, file checks and HDF5 helpers shared by every stage.

Every file a stage writes goes through :func:`atomic_path`: it is written under a
temporary name in the same folder and renamed only when complete, so a killed job never
leaves a file that looks finished.

Every HDF5 file a stage reads is opened through :func:`read_h5` (or :func:`open_h5`, which
names a missing or broken file): read-only and without HDF5's file locking. Many jobs read
one file at once (``stimuli.h5``, a features file read by every fit job), and on network file
systems (NFS, Lustre) the locks HDF5 takes often fail or are not supported. A reader never
needs them: every output is written under a temporary name and renamed when complete
(:func:`atomic_path`), so no file is read while it is written. Writers keep HDF5's locking.
Within one process, a file must not be open through :func:`read_h5` and, at the same time,
through ``h5py.File`` with locking (HDF5 refuses a second open with other locking flags).
"""

from __future__ import annotations

import contextlib
import gzip
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import h5py
import nibabel as nib
import numpy as np
import pandas as pd

from encscale.provenance import write_provenance

PathLike = str | os.PathLike  # a path argument: str or any os.PathLike (pathlib.Path, ...)


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def create_h5(path: PathLike, provenance: Mapping[str, Any] | None = None) -> Iterator[h5py.File]:
    """A new HDF5 file, written atomically (:func:`atomic_path`) and, given the job's
    ``provenance`` (:func:`encscale.provenance.job_provenance`), stamped with it."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as h5:
        if provenance is not None:
            write_provenance(h5, provenance)
        yield h5


def write_nifti(path: PathLike, data: np.ndarray, affine: np.ndarray) -> None:
    """Write a .nii.gz atomically and reproducibly (no name or time in the gzip header)."""
    img = nib.Nifti1Image(data, affine)
    img.header.set_xyzt_units("mm", "sec")
    with (
        atomic_path(path) as tmp,
        open(tmp, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=1, mtime=0) as gz,
    ):
        gz.write(img.to_bytes())


def file_identity(path: PathLike) -> list[int]:
    """A file's size and modification time (ns): what tells a resumed job that its input is
    the one it started from."""
    stat = os.stat(path)
    return [stat.st_size, stat.st_mtime_ns]


def require_file(path: PathLike, what: str) -> Path:
    """``path`` as a Path; a FileNotFoundError ``<path>: <what> is missing`` if it does not
    exist (``what`` says what the file is: "NSD design file", "VQ-VAE checkpoint", ...)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: {what} is missing")
    return path


def read_h5(source: PathLike | BinaryIO) -> h5py.File:
    """An HDF5 file (a path, or a file object) opened read-only without file locking
    (module docstring)."""
    return h5py.File(source, "r", locking=False)


def open_h5(path: PathLike, what: str) -> h5py.File:
    """Open an HDF5 file for reading (:func:`read_h5`), with an error naming the file when it
    is missing/broken."""
    path = require_file(path, f"{what} file")
    try:
        return read_h5(path)
    except OSError as err:
        raise OSError(f"{path}: cannot read {what} file (truncated or not HDF5): {err}") from err


def read_dataset(h5: h5py.File, key: str, ndim: int | None = None) -> np.ndarray:
    """Read ``h5[key]`` whole, naming the file and key if it is absent or has the wrong rank."""
    if key not in h5:
        raise KeyError(f"{h5.filename}: dataset '{key}' is missing")
    arr = h5[key][()]
    if ndim is not None and np.ndim(arr) != ndim:
        raise ValueError(
            f"{h5.filename}: dataset '{key}' has shape {np.shape(arr)}, expected {ndim}-D"
        )
    return arr


def check_finite(arr: np.ndarray, where: str) -> None:
    """Raise a ValueError naming ``where`` if ``arr`` holds NaN or infinite values."""
    bad = ~np.isfinite(arr)
    if bad.any():
        raise ValueError(f"{where}: {int(bad.sum())} non-finite values (NaN or inf)")


def write_tsv(table: pd.DataFrame, path: PathLike) -> None:
    """Write a table as TSV atomically (floats with 6 significant digits)."""
    with atomic_path(path) as tmp:
        table.to_csv(tmp, sep="\t", index=False, float_format="%.6g")
