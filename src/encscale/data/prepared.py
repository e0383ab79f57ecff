"""A lab's own data as a dataset: its ``stimuli.h5`` and ``responses/{subject}.h5``, prepared
to the contract of :mod:`encscale.contracts`, checked and taken into the study.

:func:`stimuli_problems` and :func:`responses_problems` list *every* missing or malformed
dataset of a file (not only the first), naming the file, the key and what is wrong;
:func:`import_stimuli` and :func:`import_responses` refuse a file with any, else copy it
into the study's results with its provenance recorded. ``encscale-check-data``
runs the checks from the shell::

    encscale-check-data --stimuli mydata/stimuli.h5 mydata/responses/*.h5
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from encscale.contracts import FINITE, IMAGE_STIMULI, RESPONSES, SURFACE, VOLUME, Layout
from encscale.io import PathLike, atomic_path, read_h5
from encscale.provenance import write_provenance

REQUIRED_RESPONSES = (
    "train/responses",
    "train/stimulus",
    "test/responses",
    "test/stimulus",
    "noise_ceiling",
)
# numpy dtype kinds each layout dtype accepts (a lab's float64 responses are cast on reading)
KINDS = {np.uint8: "u", np.int16: "iu", np.int32: "iu", np.int64: "iu", bool: "bu"}
FLOAT_KINDS = "f"


class PreparedDataError(ValueError):
    """A prepared file that breaks the contract; its message lists every problem."""


def _datasets(h5: h5py.File) -> dict[str, h5py.Dataset]:
    found: dict[str, h5py.Dataset] = {}
    h5.visititems(
        lambda key, obj: found.update({key: obj}) if isinstance(obj, h5py.Dataset) else None
    )
    return found


def _layout_key(key: str) -> str:
    return "rois" if key.startswith("rois/") else key


def _kinds(dtype: Any) -> str:
    if dtype == "S":
        return "SUO"
    return KINDS.get(dtype, FLOAT_KINDS)


def _layout_problems(
    datasets: Mapping[str, h5py.Dataset], layout: Layout, required: Iterable[str]
) -> list[str]:
    """Missing, unknown, mis-ranked, mis-typed and mis-sized datasets against ``layout``; a
    shared length (voxels, samples of a split) is the one most of its datasets have."""
    problems = [f"dataset '{key}' is missing" for key in required if key not in datasets]
    sized: list[tuple[str, str, int]] = []  # (dataset, dimension name, size)
    for key, ds in sorted(datasets.items()):
        if _layout_key(key) not in layout or (key.startswith("rois/") and key.count("/") != 2):
            problems.append(f"dataset '{key}' is not part of the layout")
            continue
        dims, dtype = layout[_layout_key(key)]
        if ds.ndim != len(dims):
            problems.append(
                f"dataset '{key}' is {ds.ndim}-D {ds.shape}, expected {len(dims)}-D {dims}"
            )
            continue
        if ds.dtype.kind not in _kinds(dtype):
            wanted = "strings" if dtype == "S" else np.dtype(dtype)
            problems.append(f"dataset '{key}' is {ds.dtype}, expected {wanted}")
        if any(isinstance(d, int) and size != d for size, d in zip(ds.shape, dims, strict=True)):
            problems.append(f"dataset '{key}' has shape {ds.shape}, expected {dims}")
        sized += [
            (key, d, size) for size, d in zip(ds.shape, dims, strict=True) if isinstance(d, str)
        ]
    for dim in dict.fromkeys(d for _, d, _ in sized):
        sizes = Counter(size for _, d, size in sized if d == dim)
        common = sizes.most_common(1)[0][0]
        problems += [
            f"dataset '{key}' has {size} {dim}, but most of the file has {common}"
            for key, d, size in sized
            if d == dim and size != common
        ]
    return problems


def _open(path: PathLike) -> tuple[h5py.File | None, list[str]]:
    if not Path(path).is_file():
        return None, ["the file does not exist"]
    try:
        return read_h5(path), []
    except OSError as err:
        return None, [f"not a readable HDF5 file (truncated?): {err}"]


def stimuli_problems(path: PathLike) -> list[str]:
    """Every problem of an image ``stimuli.h5`` (``images`` N × H × W × 3 uint8 and ``ids``
    (N,) int, sorted and unique), each prefixed with the file's path; [] when it is sound."""
    h5, problems = _open(path)
    if h5 is not None:
        with h5:
            datasets = _datasets(h5)
            problems = _layout_problems(datasets, IMAGE_STIMULI, IMAGE_STIMULI)
            ids = datasets.get("ids")
            if ids is not None and ids.ndim == 1 and ids.dtype.kind in "iu":
                if np.any(np.diff(ids[()]) <= 0):
                    problems.append("dataset 'ids' is not sorted and unique")
    return [f"{path}: {p}" for p in problems]


def responses_problems(path: PathLike, n_stimuli: int | None = None) -> list[str]:
    """Every problem of a ``responses/{subject}.h5``, each prefixed with the file's path:
    missing required datasets (both splits' ``responses`` and ``stimulus``,
    ``noise_ceiling``), datasets outside the layout, wrong rank, type or length, NaN or inf in
    the responses, stimulus rows outside ``stimuli.h5``'s ``n_stimuli``, a volume or surface
    given in part, a mask that disagrees with ``voxel_ijk``; [] when it is sound."""
    h5, problems = _open(path)
    if h5 is None:
        return [f"{path}: {p}" for p in problems]
    with h5:
        datasets = _datasets(h5)
        problems = _layout_problems(datasets, RESPONSES, REQUIRED_RESPONSES)
        malformed = {p.split("'")[1] for p in problems if p.startswith("dataset '")}
        for key in sorted(FINITE & datasets.keys() - malformed):
            if not np.all(np.isfinite(datasets[key][()])):
                problems.append(f"dataset '{key}' holds NaN or inf")
        for key in ("train/stimulus", "test/stimulus", "challenge/stimulus"):
            if key in datasets and key not in malformed and n_stimuli is not None:
                rows = datasets[key][()]
                if rows.size and (rows.min() < 0 or rows.max() >= n_stimuli):
                    problems.append(
                        f"dataset '{key}' has rows outside stimuli.h5's {n_stimuli} stimuli"
                    )
        for names in (VOLUME, SURFACE):
            given = [n for n in names if n in datasets]
            if given and len(given) < len(names):
                missing = [n for n in names if n not in datasets]
                problems.append(f"datasets {missing} are missing beside {given}")
        if {"mask", "voxel_ijk"} <= datasets.keys() - malformed:
            if not np.array_equal(np.argwhere(datasets["mask"][()]), datasets["voxel_ijk"][()]):
                problems.append("dataset 'voxel_ijk' does not list the mask's voxels in C order")
    return [f"{path}: {p}" for p in problems]


def count_stimuli(path: PathLike) -> int:
    """Rows of a ``stimuli.h5`` (its ``ids``), without reading the images."""
    with read_h5(path) as h5:
        return int(h5["ids"].shape[0])


def responses_atlases(path: PathLike) -> list[str]:
    """The atlases (``rois/<atlas>``) of a responses file, in file order."""
    with read_h5(path) as h5:
        return list(h5["rois"]) if "rois" in h5 else []


def has_volume(path: PathLike) -> bool:
    """Whether a responses file places its columns in a volume (``mask``)."""
    with read_h5(path) as h5:
        return "mask" in h5


def import_prepared(
    source: PathLike,
    dest: PathLike,
    problems: list[str],
    provenance: Mapping[str, Any] | None = None,
) -> None:
    """A copy of ``source`` at ``dest`` with ``provenance`` recorded, written atomically, if
    ``problems`` (from the checks above) is empty; else a :class:`PreparedDataError` listing
    them, and nothing written."""
    if problems:
        raise PreparedDataError(
            f'{source} does not follow the contract (README, "Your own dataset"):\n  '
            + "\n  ".join(problems)
        )
    with atomic_path(dest) as tmp:
        shutil.copyfile(source, tmp)
        if provenance is not None:
            with h5py.File(tmp, "a") as h5:
                write_provenance(h5, provenance)


def import_stimuli(
    source: PathLike, dest: PathLike, provenance: Mapping[str, Any] | None = None
) -> None:
    """A lab's ``stimuli.h5``, checked (:func:`stimuli_problems`), as the study's."""
    import_prepared(source, dest, stimuli_problems(source), provenance)


def import_responses(
    source: PathLike,
    stimuli: PathLike,
    dest: PathLike,
    provenance: Mapping[str, Any] | None = None,
) -> None:
    """A lab's ``responses/{subject}.h5``, checked against the study's ``stimuli``
    (:func:`responses_problems`), as the study's."""
    import_prepared(source, dest, responses_problems(source, count_stimuli(stimuli)), provenance)


def main(argv: list[str] | None = None) -> int:
    """``encscale-check-data``: check prepared files; exit 1 listing every problem."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stimuli", required=True, help="the dataset's stimuli.h5")
    parser.add_argument("responses", nargs="*", help="responses/{subject}.h5 files")
    args = parser.parse_args(argv)
    problems = stimuli_problems(args.stimuli)
    n_stimuli = None if problems else count_stimuli(args.stimuli)
    for path in args.responses:
        problems += responses_problems(path, n_stimuli)
    for problem in problems:
        print(problem)
    if not problems:
        print(f"{args.stimuli} and {len(args.responses)} responses files follow the contract")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
