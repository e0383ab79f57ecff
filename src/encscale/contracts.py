"""The four file layouts between the stages, and the functions that write and read them.

Every stage writes and reads these files through this module; no other module spells
their keys. N: stimuli, n: samples of a split, V: columns of the responses (voxels, surface
vertices or parcels), S: feature sets. Any file may also carry the provenance attributes of
:func:`encscale.provenance.write_provenance`; readers leave those out of ``attrs``.

**Stimuli**, ``results/{dataset}/stimuli.h5``. The image study
(:func:`create_image_stimuli`, :func:`image_dataset`, :func:`read_stimulus_ids`):

- ``images`` (N × H × W × 3) uint8: RGB pixels, one chunk per image;
- ``ids`` (N,) int64: each image's 0-based NSD id (its row of NSD's ``imgBrick``), sorted
  and unique.

The movie study, one row per TR clip (:func:`encscale.video.clips.tr_clip_table`) of every
movie the encoding uses (:func:`write_movie_stimuli`, :func:`read_tr_table`,
:func:`read_stimulus_codes`):

- ``movie`` (N,) bytes: the movie's name; ``tr`` (N,) int64: the index j of the TR whose
  end, (j + 1)·TR, ends the clip;
- ``start_s``, ``end_s`` (N,) float64: the clip's span in the movie, in seconds;
- ``codes`` (N × t × h × w) int16: the clip's VQ-VAE codes;
- attributes ``tr`` (s), the clip's ``frames``, ``fps`` and ``size`` (pixels), and
  ``n_codes`` (the tokenizer's codebook size).

**Responses**, ``results/{dataset}/responses/{subject}.h5`` (:func:`write_responses`,
:func:`read_responses`). Per split, ``train`` and ``test`` (the held-out samples that are
scored):

- ``<split>/responses`` (n × V) float32, finite: the image study's session-z-scored betas
  averaged over repeats; the movie study's runs, each z-scored per parcel;
- ``<split>/stimulus`` (n,) int64: each sample's row of ``stimuli.h5``;
- images: ``<split>/n_repeats`` (n,) int32, the trials averaged; movies: ``<split>/run``
  (n,) bytes, the fMRI run's dataset key, and ``<split>/tr`` (n,) int64, the sample's TR in
  its run;
- movies with several lags or a window of more than one TR: ``<split>/lagged`` (n × L × W)
  int64, the ``stimuli.h5`` rows of the sample's W TR clips (oldest first) ending at TR
  t − lag, for each of the L lags of the ``lags`` attribute; ``stimulus`` is then
  ``lagged[:, 0, -1]``, the clip of the first lag (:mod:`encscale.data.movies`).

And for the whole file:

- ``challenge/stimulus`` (n_challenge,) int64, Algonauts 2023 only: the ``stimuli.h5`` rows
  of the images without responses (the challenge's test images, in file order), the rows
  of a submission;
- ``noise_ceiling`` (V,) float32: percent of explainable variance of the test split's
  samples; NaN where unknown (no ncsnr; the movie study);
- ``ncsnr`` (V,) float32, the image study: NSD's noise-ceiling SNR (NaN where not given);
- ``rois/<atlas>/<roi>`` (V,) bool, the image study: the columns in each ROI;
- volumes (NSD, demo): ``mask`` (X × Y × Z) bool, the voxels of the columns, which follow
  its C order; ``voxel_ijk`` (V × 3) int32, each column's voxel (``argwhere(mask)``);
  ``affine`` (4 × 4) float64, voxel indices to mm;
- surfaces (Algonauts 2023): ``hemisphere`` (V,) uint8 (0 = lh, 1 = rh) and ``vertex``
  (V,) int32, the column's index among its hemisphere's challenge vertices;
- attributes: ``subject``; NSD: ``beta_version``, ``n_sessions``, ``mask_roi`` and
  ``noise_ceiling_n`` (the effective number of repeats of the ceiling); Algonauts 2023:
  ``dataset``, ``holdout``, ``seed``, ``noise_ceiling_k``, ``noise_ceiling_n``,
  ``n_vertices_lh`` and ``n_vertices_rh``; movies: ``lags`` (TRs between a clip and its
  response), ``window_trs`` (TR clips per lag), ``lag`` (the one lag, when one lag and one
  TR) and ``test_movies``.

**Features**, ``results/{dataset}/features/{model}.h5``, rows following ``stimuli.h5``
(:func:`create_features` and :func:`update_features`, or :func:`write_features`;
:func:`feature_sets`, :func:`open_features`):

- ``layers/<layer>/map`` (N × channels × h × w), float32 or float16, image models (and
  video models with ``features.pooling`` spatial: the hidden states averaged over a clip's
  code frames, on the code grid): the layer's spatial map, which a fit max-pools to k × k grids
  (:meth:`FeaturesFile.fit_sets`; k capped at the map's side, each distinct grid once);
  dataset attributes ``layer_index``, ``depth`` (layer index / (number of layers − 1))
  and ``map_size`` (h);
- ``layers/<layer>/prefix`` (N × n_prefix·channels): the layer's class and register tokens;
- ``layers/<layer>/k<k>`` (N × channels·k²), a stored pooled set: a video model's layers
  have only k = 1, its hidden states averaged over a clip's codes; image files written
  before the maps hold each layer's map max-pooled to k × k for every k of their
  ``pool_sizes`` attribute (k capped at the side), still read;
- attributes of ``prefix`` and ``k<k>``: ``layer_index``, ``depth``, ``k`` (0 for
  ``prefix``) and, image models, ``map_size`` (the map's side; 0 for ``prefix``);
- file attributes ``model``, ``n_params``, ``layers`` (names in depth order), ``precision``
  and ``spec`` (the model's registry entry or architecture, as JSON); image models also
  ``source``, ``weights``, ``storage``, ``input_size``, ``mean`` and ``std`` (the pixel
  normalisation applied), ``prefix_tokens`` and
  ``n_params_counted`` (the instantiated model's count; ``n_params`` is the entry's
  ``n_params`` where it gives one) (older image files also ``pool_sizes``, and no
  ``n_params_counted``).

**Fits**, ``results/{dataset}/fits/{subject}/{model}/n{size}_s{seed}.h5`` (:func:`write_fit`,
:func:`read_fit`):

- ``best_set`` (V,) int16: each voxel's chosen set, an index into ``feature_sets``;
- ``feature_sets`` (S,) bytes ``<layer>/k<k>`` (``<layer>/k<k>/lag<L>``: a movie fit
  choosing among its lags, ``encoding.lag_mode`` select); ``set_depth`` (S,) float32, the
  relative depth of each set's layer (0 = first, 1 = last);
- ``best_alpha`` (V,) float32: the chosen ridge penalty; ``cv_score`` (V,) float32: the
  mean validation score of the chosen set and penalty; ``set_scores`` (S × V) float16:
  the best mean validation score each set reached (a diagnostic: half the bytes, resolution
  about 5e-4 at 0.5); ``edge_gain`` (V,) float32: where the chosen penalty is the grid's
  smallest or largest, how much its mean validation score beats the next penalty inward,
  else 0 (:func:`encscale.encoding.ridge.edge_gain`);
- ``train_rows`` (size,) int64: the rows of ``train/`` in the responses file that were used;
- ``test_r`` (V,) float32, finite: the Pearson r of the test split's predictions;
  ``test_pred`` (n_test × V) float32, finite: those predictions, in every fit file unless
  ``encoding.predictions`` is ``needed``, which keeps them only at the sizes an ensemble
  reads;
- ``challenge_pred`` (n_challenge × V) float32, finite: predictions for ``challenge/``,
  when the responses file has it;
- attributes ``subject``, ``model``, ``n_params``, ``size``, ``seed``, ``n_folds``,
  ``scoring`` and ``alphas`` (float64, the penalties tried).

An ensemble's file, ``fits/{subject}/ensemble/n{size}_s{seed}.h5``, holds ``test_pred``,
``test_r`` and ``challenge_pred`` (when every member has it), with the attributes
``subject``, ``model`` ("ensemble"), ``members``, ``n_params`` (the members' sum), ``size``
and ``seed``.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import h5py
import numpy as np
import pandas as pd

from encscale.io import PathLike, check_finite, create_h5, open_h5, read_dataset
from encscale.provenance import PREFIX as PROVENANCE_PREFIX
from encscale.provenance import write_provenance

# Each dataset's dimensions and dtype. A dimension is a size, or the name of a length that
# every dataset of the file with that name shares; "S" is a byte-string dtype.
Layout = Mapping[str, tuple[tuple[int | str, ...], Any]]

IMAGE_STIMULI: Layout = {
    "images": (("stimuli", "height", "width", 3), np.uint8),
    "ids": (("stimuli",), np.int64),
}
MOVIE_STIMULI: Layout = {
    "movie": (("clips",), "S"),
    "tr": (("clips",), np.int64),
    "start_s": (("clips",), np.float64),
    "end_s": (("clips",), np.float64),
    "codes": (("clips", "code frames", "code rows", "code columns"), np.int16),
}
SPLITS = ("train", "test")
SPLIT_DATASETS = ("responses", "stimulus", "n_repeats", "run", "tr", "lagged")
RESPONSES: Layout = {
    **{
        f"{split}/{name}": (dims, dtype)
        for split in SPLITS
        for name, dims, dtype in (
            ("responses", (f"{split} samples", "voxels"), np.float32),
            ("stimulus", (f"{split} samples",), np.int64),
            ("n_repeats", (f"{split} samples",), np.int32),
            ("run", (f"{split} samples",), "S"),
            ("tr", (f"{split} samples",), np.int64),
            ("lagged", (f"{split} samples", "lags", "window"), np.int64),
        )
    },
    "challenge/stimulus": (("challenge stimuli",), np.int64),
    "ncsnr": (("voxels",), np.float32),
    "noise_ceiling": (("voxels",), np.float32),
    "hemisphere": (("voxels",), np.uint8),
    "vertex": (("voxels",), np.int32),
    "rois": (("voxels",), bool),  # every rois/<atlas>/<roi>
    "voxel_ijk": (("voxels", 3), np.int32),
    "mask": (("x", "y", "z"), bool),
    "affine": ((4, 4), np.float64),
}
VOLUME = ("voxel_ijk", "mask", "affine")  # the columns' voxels (volume datasets)
SURFACE = ("hemisphere", "vertex")  # the columns' vertices (surface datasets)
# The parts of a responses file and the dataset or group that marks each one's presence.
RESPONSE_PARTS = {
    "train": "train",
    "test": "test",
    "challenge": "challenge",
    "noise_ceiling": "noise_ceiling",
    "ncsnr": "ncsnr",
    "rois": "rois",
    "volume": "mask",
    "surface": "hemisphere",
}
FIT: Layout = {
    "best_set": (("voxels",), np.int16),
    "feature_sets": (("feature sets",), "S"),
    "set_depth": (("feature sets",), np.float32),
    "best_alpha": (("voxels",), np.float32),
    "cv_score": (("voxels",), np.float32),
    "set_scores": (("feature sets", "voxels"), np.float16),
    "edge_gain": (("voxels",), np.float32),
    "train_rows": (("training samples",), np.int64),
    "test_pred": (("test samples", "voxels"), np.float32),
    "test_r": (("voxels",), np.float32),
    "challenge_pred": (("challenge stimuli", "voxels"), np.float32),
}
FINITE = {"train/responses", "test/responses", "test_pred", "test_r", "challenge_pred"}
FEATURES_ATTRS = ("model", "n_params", "layers")  # the file attributes every writer sets


class Attrs(dict):
    """A file's attributes, provenance left out; a missing one is a KeyError naming the file."""

    def __init__(self, path: PathLike, attrs: Mapping[str, Any]) -> None:
        super().__init__((k, v) for k, v in attrs.items() if not k.startswith(PROVENANCE_PREFIX))
        self.path = str(path)

    def __missing__(self, key: str) -> Any:
        raise KeyError(f"{self.path}: attribute '{key}' is missing")


# --- checks ----------------------------------------------------------------------------------


def _dims(layout: Layout, key: str) -> tuple[tuple[int | str, ...], Any]:
    return layout["rois"] if key.startswith("rois/") else layout[key]


def _cast(layout: Layout, key: str, value: Any) -> np.ndarray:
    """``value`` as the dtype ``layout`` gives ``key`` (no copy when it already is)."""
    dtype = _dims(layout, key)[1]
    return np.asarray(value).astype(dtype, copy=False)


def _check(path: PathLike, layout: Layout, arrays: Mapping[str, np.ndarray]) -> None:
    """Refuse arrays whose rank, size or shared lengths disagree with ``layout`` and with each
    other, or that hold NaN or inf where the layout says finite, naming the file and key."""
    seen: dict[str, tuple[int, str]] = {}
    for key, arr in arrays.items():
        dims = _dims(layout, key)[0]
        if arr.ndim != len(dims):
            raise ValueError(
                f"{path}: dataset '{key}' has shape {arr.shape}, expected {len(dims)}-D"
            )
        for size, dim in zip(arr.shape, dims, strict=True):
            if isinstance(dim, int):
                if size != dim:
                    raise ValueError(
                        f"{path}: dataset '{key}' has shape {arr.shape}, expected {dims}"
                    )
                continue
            first = seen.setdefault(dim, (size, key))
            if first[0] != size:
                raise ValueError(
                    f"{path}: dataset '{key}' has shape {arr.shape}: {size} {dim}, but "
                    f"'{first[1]}' has {first[0]}"
                )
        if key in FINITE:
            check_finite(arr, f"{path}: {key}")


def _check_volume(path: PathLike, mask: np.ndarray, voxel_ijk: np.ndarray) -> None:
    if not np.array_equal(np.argwhere(mask), voxel_ijk):
        raise ValueError(
            f"{path}: voxel_ijk ({voxel_ijk.shape[0]} voxels) does not list the mask's "
            f"{int(mask.sum())} voxels in C order"
        )


def _write(h5: h5py.File, arrays: Mapping[str, np.ndarray]) -> None:
    for key, arr in arrays.items():
        h5[key] = arr


def _read(h5: h5py.File, keys: Collection[str]) -> dict[str, np.ndarray]:
    return {key: read_dataset(h5, key) for key in keys}


# --- stimuli ---------------------------------------------------------------------------------


@contextlib.contextmanager
def create_image_stimuli(
    path: PathLike,
    ids: np.ndarray,
    image_shape: Sequence[int],
    provenance: Mapping[str, Any] | None = None,
) -> Iterator[h5py.Dataset]:
    """A new image ``stimuli.h5`` of the images ``ids`` (sorted, unique NSD ids), written
    atomically: yields its ``images`` dataset (N × H × W × 3, ``image_shape`` = (H, W, 3))
    for the caller to fill, then writes ``ids``."""
    ids = _cast(IMAGE_STIMULI, "ids", ids)
    if ids.ndim != 1 or np.any(np.diff(ids) <= 0):
        raise ValueError(f"{path}: the image ids must be sorted and unique")
    if len(image_shape) != 3 or image_shape[-1] != 3:
        raise ValueError(f"{path}: images must be H × W × 3, got {tuple(image_shape)}")
    shape = (ids.size, *image_shape)
    with create_h5(path, provenance) as h5:
        yield h5.create_dataset("images", shape=shape, dtype=np.uint8, chunks=(1, *shape[1:]))
        h5["ids"] = ids


def view_image_stimuli(
    path: PathLike,
    ids: np.ndarray,
    source: PathLike,
    dataset: str,
    source_shape: Sequence[int],
    provenance: Mapping[str, Any] | None = None,
) -> None:
    """A new image ``stimuli.h5`` whose ``images`` are a view (an HDF5 virtual dataset) of
    rows ``ids`` (sorted, unique) of ``source``'s N × H × W × 3 uint8 ``dataset``: a few
    kilobytes instead of a copy. One mapping per run of consecutive ids; ``source`` is
    recorded by its absolute path, and :func:`image_dataset` refuses the file if it has gone."""
    ids = _cast(IMAGE_STIMULI, "ids", ids)
    if ids.ndim != 1 or np.any(np.diff(ids) <= 0):
        raise ValueError(f"{path}: the image ids must be sorted and unique")
    layout = h5py.VirtualLayout(shape=(ids.size, *source_shape[1:]), dtype=np.uint8)
    brick = h5py.VirtualSource(os.path.abspath(source), dataset, shape=tuple(source_shape))
    breaks = np.flatnonzero(np.diff(ids) != 1) + 1
    for first, last in zip(np.r_[0, breaks], np.r_[breaks, ids.size], strict=True):
        layout[first:last] = brick[int(ids[first]) : int(ids[last - 1]) + 1]
    with create_h5(path, provenance) as h5:
        h5.create_virtual_dataset("images", layout, fillvalue=0)
        h5["ids"] = ids


def image_dataset(stim: h5py.File) -> h5py.Dataset:
    """The (N, H, W, 3) uint8 ``images`` dataset of an open ``stimuli.h5``, checked; a view
    (:func:`view_image_stimuli`) whose source file is missing is refused, naming it (HDF5
    would read zeros)."""
    if "images" not in stim:
        raise KeyError(f"{stim.filename}: dataset 'images' is missing")
    images = stim["images"]
    if images.is_virtual:
        for source in {vs.file_name for vs in images.virtual_sources()}:
            if not os.path.isfile(source):
                raise FileNotFoundError(
                    f"{stim.filename}: its images are a view of {source}, which is missing "
                    "(moved or deleted?): restore it, or prepare the stimuli again "
                    "(prepare.images: copy keeps a copy)"
                )
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(
            f"{stim.filename}: 'images' is {images.dtype} {images.shape}, "
            "expected uint8 (N, H, W, 3)"
        )
    return images


def read_stimulus_ids(path: PathLike) -> np.ndarray:
    """The NSD ids of an image ``stimuli.h5``'s rows: (N,) int64, checked sorted and unique."""
    with open_h5(path, "stimuli") as h5:
        ids = read_dataset(h5, "ids", ndim=1)
    if ids.size == 0 or np.any(np.diff(ids) <= 0):
        raise ValueError(f"{path}: 'ids' is empty or not sorted and unique")
    return ids


def write_movie_stimuli(
    path: PathLike,
    table: pd.DataFrame,
    codes: np.ndarray,
    attrs: Mapping[str, Any],
    provenance: Mapping[str, Any] | None = None,
) -> None:
    """Write a movie ``stimuli.h5`` from the TR clip table (columns ``movie``, ``tr``,
    ``start_s``, ``end_s``) and the clips' codes (N × t × h × w)."""
    if len(codes) != len(table):
        raise ValueError(f"{path}: {len(codes)} clips' codes for a table of {len(table)} TR clips")
    arrays = {
        key: _cast(MOVIE_STIMULI, key, table[key].to_numpy())
        for key in MOVIE_STIMULI
        if key != "codes"
    }
    arrays["codes"] = _cast(MOVIE_STIMULI, "codes", codes)
    _check(path, MOVIE_STIMULI, arrays)
    with create_h5(path, provenance) as h5:
        _write(h5, arrays)
        h5.attrs.update(attrs)


def read_tr_table(path: PathLike) -> pd.DataFrame:
    """The TR clip of every row of a movie ``stimuli.h5``: columns ``movie`` (str), ``tr``,
    ``start_s`` and ``end_s``."""
    keys = ("movie", "tr", "start_s", "end_s")
    with open_h5(path, "stimuli") as h5:
        arrays = _read(h5, keys)
    _check(path, MOVIE_STIMULI, arrays)
    arrays["movie"] = arrays["movie"].astype(str)
    return pd.DataFrame(arrays)


def read_stimulus_codes(path: PathLike) -> np.ndarray:
    """The VQ-VAE codes of a movie ``stimuli.h5``'s clips: (N × t × h × w) int16."""
    with open_h5(path, "stimuli") as h5:
        codes = read_dataset(h5, "codes")
    _check(path, MOVIE_STIMULI, {"codes": codes})
    return codes


# --- responses -------------------------------------------------------------------------------


@dataclass
class Split:
    """One split of a responses file: ``responses`` (n × V) and ``stimulus`` (n,), with
    ``n_repeats`` (image study) or ``run`` (str) and ``tr`` (movie study), and ``lagged``
    (movie study, several lags or a window)."""

    responses: np.ndarray
    stimulus: np.ndarray
    n_repeats: np.ndarray | None = None
    run: np.ndarray | None = None
    tr: np.ndarray | None = None
    lagged: np.ndarray | None = None


@dataclass
class Responses:
    """A responses file, or the parts of it that were read (None or empty: not read or absent).

    ``challenge_stimulus``: ``challenge/stimulus``; ``rois``: (atlas, roi) → (V,) bool mask,
    in the file's order.
    """

    train: Split | None = None
    test: Split | None = None
    challenge_stimulus: np.ndarray | None = None
    noise_ceiling: np.ndarray | None = None
    ncsnr: np.ndarray | None = None
    rois: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    voxel_ijk: np.ndarray | None = None
    mask: np.ndarray | None = None
    affine: np.ndarray | None = None
    hemisphere: np.ndarray | None = None
    vertex: np.ndarray | None = None
    attrs: Mapping[str, Any] = field(default_factory=dict)


def _response_arrays(responses: Responses) -> dict[str, Any]:
    """The datasets of ``responses`` by key, in the order they are written."""
    arrays: dict[str, Any] = {}
    for split in SPLITS:
        part = getattr(responses, split)
        if part is not None:
            arrays.update({f"{split}/{name}": getattr(part, name) for name in SPLIT_DATASETS})
    arrays["challenge/stimulus"] = responses.challenge_stimulus
    for name in ("ncsnr", "noise_ceiling", *SURFACE):
        arrays[name] = getattr(responses, name)
    arrays.update({f"rois/{atlas}/{roi}": m for (atlas, roi), m in responses.rois.items()})
    for name in VOLUME:
        arrays[name] = getattr(responses, name)
    return {key: value for key, value in arrays.items() if value is not None}


def write_responses(
    path: PathLike, responses: Responses, provenance: Mapping[str, Any] | None = None
) -> None:
    """Write a responses file, atomically; it needs ``train``, ``test`` and ``noise_ceiling``."""
    for name in ("train", "test", "noise_ceiling"):
        if getattr(responses, name) is None:
            raise ValueError(f"{path}: a responses file needs '{name}'")
    for names in (VOLUME, SURFACE):
        given = [name for name in names if getattr(responses, name) is not None]
        if given and len(given) < len(names):
            raise ValueError(f"{path}: {given} without the rest of {list(names)}")
    arrays = {k: _cast(RESPONSES, k, v) for k, v in _response_arrays(responses).items()}
    _check(path, RESPONSES, arrays)
    if "mask" in arrays:
        _check_volume(path, arrays["mask"], arrays["voxel_ijk"])
    with create_h5(path, provenance) as h5:
        _write(h5, arrays)
        h5.attrs.update(responses.attrs)


def _part_keys(h5: h5py.File, part: str) -> list[str]:
    """The keys of one part (:data:`RESPONSE_PARTS`) of an open responses file."""
    if part in SPLITS:
        by_study = [f"{part}/{name}" for name in ("n_repeats", "run", "tr", "lagged")]
        return [f"{part}/responses", f"{part}/stimulus", *(k for k in by_study if k in h5)]
    if part == "challenge":
        return ["challenge/stimulus"]
    if part == "rois":
        if "rois" not in h5:
            raise KeyError(f"{h5.filename}: group 'rois' is missing")
        return [f"rois/{atlas}/{roi}" for atlas, group in h5["rois"].items() for roi in group]
    if part == "volume":
        return list(VOLUME)
    if part == "surface":
        return list(SURFACE)
    return [part]


def response_shapes(path: PathLike) -> dict[str, int]:
    """The sizes of a responses file without reading its arrays: ``n_train``, ``n_test``,
    ``n_challenge`` (0 without challenge images), ``columns`` (V) and ``n_lags`` (L of a
    movie's ``train/lagged``; 1 without it)."""
    with open_h5(path, "responses") as h5:
        for key in ("train/responses", "test/responses"):
            if key not in h5:
                raise KeyError(f"{path}: dataset '{key}' is missing")
        n_train, columns = h5["train/responses"].shape
        challenge = h5.get("challenge/stimulus")
        lagged = h5.get("train/lagged")
        return dict(
            n_train=int(n_train),
            n_test=int(h5["test/responses"].shape[0]),
            n_challenge=0 if challenge is None else int(challenge.shape[0]),
            columns=int(columns),
            n_lags=1 if lagged is None else int(lagged.shape[1]),
        )


def read_responses(
    path: PathLike, parts: Collection[str] = (), optional: Collection[str] = ()
) -> Responses:
    """The ``parts`` of a responses file, and those of ``optional`` that it has, checked.

    Parts (:data:`RESPONSE_PARTS`): ``train``, ``test``, ``challenge``, ``noise_ceiling``,
    ``ncsnr``, ``rois``, ``volume`` (``mask``, ``voxel_ijk``, ``affine``) and ``surface``
    (``hemisphere``, ``vertex``); the attributes are always read. A missing part, a shape
    that disagrees with the layout or the other datasets, or NaN in the responses is an
    error naming the file and the key.
    """
    unknown = sorted((set(parts) | set(optional)) - set(RESPONSE_PARTS))
    if unknown:
        raise ValueError(
            f"unknown parts {unknown} of a responses file (known: {list(RESPONSE_PARTS)})"
        )
    with open_h5(path, "responses") as h5:
        keys = [
            key
            for part in RESPONSE_PARTS
            if part in parts or (part in optional and RESPONSE_PARTS[part] in h5)
            for key in _part_keys(h5, part)
        ]
        arrays = _read(h5, keys)
        attrs = Attrs(path, h5.attrs)
    _check(path, RESPONSES, arrays)
    if "mask" in arrays:
        arrays["mask"] = arrays["mask"].astype(bool)
        _check_volume(path, arrays["mask"], arrays["voxel_ijk"])
    splits = {
        split: Split(**{name: arrays.get(f"{split}/{name}") for name in SPLIT_DATASETS})
        for split in SPLITS
        if f"{split}/responses" in arrays
    }
    for split in splits.values():
        if split.run is not None:
            split.run = split.run.astype(str)
    rois = {
        tuple(key.split("/")[1:]): mask.astype(bool)
        for key, mask in arrays.items()
        if key.startswith("rois/")
    }
    return Responses(
        **splits,
        challenge_stimulus=arrays.get("challenge/stimulus"),
        rois=rois,
        **{name: arrays.get(name) for name in ("noise_ceiling", "ncsnr", *VOLUME, *SURFACE)},
        attrs=attrs,
    )


# --- features --------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureSet:
    """One feature set of a features file, ``width`` columns: a layer's map max-pooled to
    k × k (k = 0: its prefix tokens); ``depth`` is the layer's relative depth (0 first, 1
    last). ``from_map``: pooled at fit time from the layer's stored map, not stored itself."""

    layer: str
    k: int
    depth: float
    width: int
    layer_index: int
    map_size: int | None = None  # image models: the map's side (0 for the prefix tokens)
    from_map: bool = False

    @property
    def key(self) -> str:
        """The dataset: ``layers/<layer>/k<k>`` or ``layers/<layer>/prefix``; the map's,
        ``layers/<layer>/map``, for a set pooled from it."""
        if self.from_map:
            return f"layers/{self.layer}/map"
        return f"layers/{self.layer}/{'prefix' if self.k == 0 else f'k{self.k}'}"

    @property
    def name(self) -> str:
        """The set's entry in a fit's ``feature_sets``: ``<layer>/k<k>``."""
        return f"{self.layer}/k{self.k}"

    def attrs(self) -> dict[str, Any]:
        """The dataset's attributes."""
        attrs = dict(layer_index=self.layer_index, depth=self.depth, k=self.k)
        return attrs if self.map_size is None else dict(attrs, map_size=self.map_size)


@dataclass(frozen=True)
class LayerMap:
    """One layer's stored spatial map of an image model: N × channels × height × width."""

    layer: str
    depth: float
    layer_index: int
    channels: int
    height: int
    width: int

    @property
    def key(self) -> str:
        """The dataset: ``layers/<layer>/map``."""
        return f"layers/{self.layer}/map"

    @property
    def side(self) -> int:
        """The largest k of a k × k grid pooled from the map."""
        return min(self.height, self.width)

    def attrs(self) -> dict[str, Any]:
        """The dataset's attributes."""
        return dict(layer_index=self.layer_index, depth=self.depth, map_size=self.height)


def _pooled_set(lm: LayerMap, k: int) -> FeatureSet:
    """The set of ``lm``'s map max-pooled to k × k (k ≤ side): channels·k² columns."""
    return FeatureSet(
        lm.layer, k, lm.depth, lm.channels * k * k, lm.layer_index, map_size=lm.side, from_map=True
    )


ALL_POOL_SIZES = tuple(range(1, 17))  # pool_sizes "all": the first study's k = 1 … 16


def pool_grid(pool_sizes: Sequence[int] | str, side: int) -> list[int]:
    """The distinct k of ``pool_sizes`` capped at ``side``, sorted; "all": k = 1 … 16."""
    if isinstance(pool_sizes, str):  # "all", checked by _check_pool_sizes
        pool_sizes = ALL_POOL_SIZES
    return sorted({min(int(k), side) for k in pool_sizes})


def layer_groups(sizes: Sequence[int], max_bytes: int) -> list[list[int]]:
    """Indices of layers whose maps take ``sizes`` bytes, in order, split into groups that
    hold at most ``max_bytes`` each; a layer larger than that is a group of its own."""
    groups: list[list[int]] = []
    held = 0
    for i, size in enumerate(sizes):
        if groups and held + size <= max_bytes:
            groups[-1].append(i)
            held += size
        else:
            groups.append([i])
            held = size
    return groups


def group_budget(group_memory_mb: int | None, device_bytes: float) -> int:
    """Bytes one group of layers' maps may take (``features.group_memory_mb``): as given,
    else a quarter of the device's memory ``device_bytes``, or 4 GiB where it is unbounded
    (the CPU)."""
    if group_memory_mb:
        return int(group_memory_mb) * 2**20
    return int(device_bytes) // 4 if math.isfinite(device_bytes) else 4 * 2**30


def map_sets(lm: LayerMap, pool_sizes: Sequence[int] | str) -> list[FeatureSet]:
    """The sets a fit pools from a layer's map: one per distinct k of ``pool_sizes`` capped
    at its side ("all": k = 1 … 16)."""
    return [_pooled_set(lm, k) for k in pool_grid(pool_sizes, lm.side)]


def _check_pool_sizes(path: PathLike, pool_sizes: Sequence[int] | str | None) -> None:
    if pool_sizes is None or (isinstance(pool_sizes, str) and pool_sizes == "all"):
        return
    if isinstance(pool_sizes, str) or len(pool_sizes) == 0 or min(pool_sizes) < 1:
        raise ValueError(
            f"{path}: pool_sizes must be 'all' or a non-empty list of k ≥ 1, got {pool_sizes!r}"
        )


def _check_features_attrs(path: PathLike, attrs: Mapping[str, Any]) -> None:
    missing = [name for name in FEATURES_ATTRS if name not in attrs]
    if missing:
        raise ValueError(f"{path}: a features file needs the attributes {missing}")


def _check_stored(path: PathLike, sets: Sequence[FeatureSet]) -> None:
    pooled = [fs.name for fs in sets if fs.from_map]
    if pooled:
        raise ValueError(f"{path}: the sets {pooled} are pooled from maps at fit time, not stored")


def create_features(
    path: PathLike,
    sets: Sequence[FeatureSet],
    n_stimuli: int,
    dtype: Any,
    *,
    maps: Sequence[LayerMap] = (),
    compression: str | None = None,
    chunk_rows: int = 1,
) -> None:
    """Create a features file's datasets, each layer map's (n_stimuli × C × h × w) and each
    set's (n_stimuli × width), to be filled in place (:func:`update_features`): without
    ``compression`` each is contiguous and allocated whole up front, so an interrupted
    writer leaves no half-written HDF5 metadata; with it, chunks are ``chunk_rows`` rows."""
    _check_stored(path, sets)
    datasets = [(lm.key, (lm.channels, lm.height, lm.width), lm.attrs()) for lm in maps]
    datasets += [(fs.key, (fs.width,), fs.attrs()) for fs in sets]
    with h5py.File(path, "w", track_order=True) as h5:
        for key, row, attrs in datasets:
            chunks = (min(n_stimuli, chunk_rows), *row) if compression else None
            dset = h5.create_dataset(
                key,
                (n_stimuli, *row),
                dtype=dtype,
                chunks=chunks,
                compression=compression,
                track_times=False,
            )
            dset.attrs.update(attrs)
            if not compression:
                dset[0] = 0  # a contiguous dataset is allocated whole at its first write


@contextlib.contextmanager
def update_features(
    path: PathLike, attrs: Mapping[str, Any], provenance: Mapping[str, Any] | None = None
) -> Iterator[h5py.File]:
    """Open a file of :func:`create_features` to fill its maps' and sets' rows
    (``h5[lm.key]``, ``h5[fs.key]``), after writing its file attributes
    (:data:`FEATURES_ATTRS` and more) and ``provenance``."""
    _check_features_attrs(path, attrs)
    with h5py.File(path, "r+") as h5:
        h5.attrs.update(attrs)
        if provenance is not None:
            write_provenance(h5, provenance)
        yield h5


def write_features(
    path: PathLike,
    sets: Sequence[tuple[FeatureSet, np.ndarray]],
    attrs: Mapping[str, Any],
    provenance: Mapping[str, Any] | None = None,
) -> None:
    """Write a whole features file atomically: each set's (N × width) values, then ``attrs``."""
    _check_features_attrs(path, attrs)
    _check_stored(path, [fs for fs, _ in sets])
    n_stimuli = len(sets[0][1]) if sets else 0
    for fs, x in sets:
        if x.shape != (n_stimuli, fs.width):
            raise ValueError(
                f"{path}: {fs.key} has shape {x.shape}, expected ({n_stimuli}, {fs.width})"
            )
    with create_h5(path, provenance) as h5:
        for fs, x in sets:
            h5.create_dataset(fs.key, data=x).attrs.update(fs.attrs())
        h5.attrs.update(attrs)


def _layer_groups(path: PathLike, h5: h5py.File) -> list[tuple[str, h5py.Group]]:
    """Each layer's group, in the ``layers`` attribute's (depth) order."""
    if "layers" not in h5:
        raise KeyError(f"{path}: group 'layers' is missing")
    groups = []
    for layer in Attrs(path, h5.attrs)["layers"]:
        group = h5["layers"].get(str(layer))
        if group is None:
            raise KeyError(f"{path}: group 'layers/{layer}' is missing")
        groups.append((str(layer), group))
    return groups


def _feature_sets(path: PathLike, h5: h5py.File) -> list[FeatureSet]:
    """The stored 2-D sets (not the maps), in depth order, then k."""
    sets = []
    for layer, group in _layer_groups(path, h5):
        of_layer = []
        for name, d in group.items():
            if name == "map":
                continue
            attrs = Attrs(f"{path}: {d.name}", d.attrs)
            of_layer.append(
                FeatureSet(
                    layer=layer,
                    k=int(attrs["k"]),
                    depth=float(attrs["depth"]),
                    width=int(d.shape[1]),
                    layer_index=int(attrs["layer_index"]),
                    map_size=int(attrs["map_size"]) if "map_size" in attrs else None,
                )
            )
        sets += sorted(of_layer, key=lambda fs: fs.k)
    return sets


def _layer_maps(path: PathLike, h5: h5py.File) -> list[LayerMap]:
    """The stored layer maps, in depth order; a file with maps has one for every layer."""
    maps, missing = [], []
    for layer, group in _layer_groups(path, h5):
        if "map" not in group:
            missing.append(layer)
            continue
        d = group["map"]
        if d.ndim != 4:
            raise ValueError(
                f"{path}: dataset '{d.name}' has shape {d.shape}, expected 4-D "
                "(stimuli × channels × height × width)"
            )
        attrs = Attrs(f"{path}: {d.name}", d.attrs)
        depth, index = float(attrs["depth"]), int(attrs["layer_index"])
        maps.append(LayerMap(layer, depth, index, *(int(s) for s in d.shape[1:])))
    if maps and missing:
        raise KeyError(f"{path}: dataset 'layers/{missing[0]}/map' is missing")
    return maps


def feature_sets(path: PathLike) -> list[FeatureSet]:
    """The stored 2-D feature sets of a features file (not its maps), in depth order, then k."""
    with open_h5(path, "features") as h5:
        return _feature_sets(path, h5)


@dataclass(frozen=True)
class FeaturesFile:
    """An open features file (:func:`open_features`): its model, parameter count, number of
    stimuli, stored 2-D sets and layer maps."""

    path: str
    h5: h5py.File
    model: str
    n_params: int
    n_stimuli: int
    sets: list[FeatureSet]
    maps: list[LayerMap] = field(default_factory=list)

    def fit_sets(self, pool_sizes: Sequence[int] | str | None) -> list[FeatureSet]:
        """The sets a fit chooses from, per layer in depth order, then k (prefix first).

        A layer with a map: one set pooled from it (``from_map``) per distinct k of
        ``pool_sizes`` capped at its side ("all": k = 1 … 16), and its prefix set if stored.
        A file without maps: its stored sets; an older image file's (attribute
        ``pool_sizes``) only the requested pooled sets and the prefix, or a ValueError
        when it lacks one. ``pool_sizes`` None: every stored set (an error for maps).
        """
        _check_pool_sizes(self.path, pool_sizes)
        maps = {lm.layer: lm for lm in self.maps}
        extracted = self.h5.attrs.get("pool_sizes")
        out: list[FeatureSet] = []
        for layer in Attrs(self.path, self.h5.attrs)["layers"]:
            stored = [fs for fs in self.sets if fs.layer == str(layer)]
            prefix = [fs for fs in stored if fs.k == 0]
            if str(layer) in maps:
                if pool_sizes is None:
                    raise ValueError(
                        f"{self.path}: the layers' maps are pooled at fit time: give the "
                        "pool sizes (encoding.pool_sizes)"
                    )
                lm = maps[str(layer)]
                out += prefix + map_sets(lm, pool_sizes)
            elif pool_sizes is None or extracted is None:
                out += stored
            else:
                out += prefix + self._stored_grid(str(layer), stored, pool_sizes, extracted)
        return out

    def _stored_grid(
        self,
        layer: str,
        stored: list[FeatureSet],
        pool_sizes: Sequence[int] | str,
        extracted: Sequence[int],
    ) -> list[FeatureSet]:
        """An older image file's pooled sets of one layer for ``pool_sizes``, all present."""
        pooled = {fs.k: fs for fs in stored if fs.k > 0}
        side = max((fs.map_size or fs.k for fs in pooled.values()), default=1)
        want = pool_grid(pool_sizes, side)
        missing = [k for k in want if k not in pooled]
        if missing:
            raise ValueError(
                f"{self.path}: layer '{layer}' stores the pooled sets k {sorted(pooled)} "
                f"(extracted with pool_sizes {[int(k) for k in extracted]}), but the fit asks "
                f"for k {want}, without {missing}; re-extract the features, which now store "
                f"each layer's map: delete {self.path}, or run snakemake with "
                "--forcerun extract_features"
            )
        return [pooled[k] for k in want]

    def read_rows(self, fs: FeatureSet, rows: np.ndarray) -> np.ndarray:
        """Rows (any order, repeats allowed) of one stored set as float32 (len(rows) ×
        width), finite."""
        if fs.from_map:
            raise ValueError(
                f"{self.path}: {fs.name} is pooled from the layer's map at fit time: read the "
                "map with read_map and pool it"
            )
        dset = self.h5[fs.key]
        uniq, inverse = np.unique(rows, return_inverse=True)
        x = dset[uniq][inverse].astype(np.float32, copy=False)
        check_finite(x, f"{self.path}: {dset.name}")
        return x

    def read_map(self, lm: LayerMap, rows: np.ndarray, channels: slice = slice(None)) -> np.ndarray:
        """Rows (any order, repeats allowed) of a layer's map, ``channels`` sliced, as
        float32 (len(rows) × c × h × w), finite: the sorted unique rows in one read, then
        put in order."""
        dset = self.h5[lm.key]
        rows = np.asarray(rows)
        uniq, inverse = np.unique(rows, return_inverse=True)
        x = dset[uniq, channels].astype(np.float32, copy=False)
        if not np.array_equal(uniq, rows):
            x = x[inverse.reshape(-1)]
        check_finite(x, f"{self.path}: {dset.name}")
        return x


@contextlib.contextmanager
def open_features(path: PathLike) -> Iterator[FeaturesFile]:
    """A features file, open for reading its sets' and maps' rows; every set and map must
    have the same rows."""
    with open_h5(path, "features") as h5:
        sets, maps = _feature_sets(path, h5), _layer_maps(path, h5)
        rows = {x.key: h5[x.key].shape[0] for x in [*maps, *sets]}
        if len(set(rows.values())) > 1:
            raise ValueError(f"{path}: the feature sets' numbers of stimuli differ: {rows}")
        attrs = Attrs(path, h5.attrs)
        yield FeaturesFile(
            path=str(path),
            h5=h5,
            model=str(attrs["model"]),
            n_params=int(attrs["n_params"]),
            n_stimuli=next(iter(rows.values()), 0),
            sets=sets,
            maps=maps,
        )


# --- fits ------------------------------------------------------------------------------------


@dataclass
class Fit:
    """A fit file, or the datasets of it that were read (None: not read, or absent)."""

    best_set: np.ndarray | None = None
    feature_sets: np.ndarray | None = None  # str
    set_depth: np.ndarray | None = None
    best_alpha: np.ndarray | None = None
    cv_score: np.ndarray | None = None
    set_scores: np.ndarray | None = None
    edge_gain: np.ndarray | None = None
    train_rows: np.ndarray | None = None
    test_pred: np.ndarray | None = None
    test_r: np.ndarray | None = None
    challenge_pred: np.ndarray | None = None
    attrs: Mapping[str, Any] = field(default_factory=dict)


def write_fit(path: PathLike, fit: Fit, provenance: Mapping[str, Any] | None = None) -> None:
    """Write a fit file, atomically; it needs ``test_r``."""
    if fit.test_r is None:
        raise ValueError(f"{path}: a fit file needs test_r")
    arrays = {
        key: _cast(FIT, key, getattr(fit, key)) for key in FIT if getattr(fit, key) is not None
    }
    _check(path, FIT, arrays)
    with create_h5(path, provenance) as h5:
        _write(h5, arrays)
        h5.attrs.update(fit.attrs)


def read_fit(path: PathLike, parts: Collection[str] = (), optional: Collection[str] = ()) -> Fit:
    """The datasets ``parts`` of a fit file, and those of ``optional`` that it has, checked
    (a missing dataset, a shape that disagrees with the layout or the other datasets, or NaN
    in the predictions or their r is an error naming the file and the key); the attributes
    are always read."""
    unknown = sorted((set(parts) | set(optional)) - set(FIT))
    if unknown:
        raise ValueError(f"unknown datasets {unknown} of a fit file (known: {list(FIT)})")
    with open_h5(path, "fit") as h5:
        keys = [key for key in FIT if key in parts or (key in optional and key in h5)]
        arrays = _read(h5, keys)
        attrs = Attrs(path, h5.attrs)
    _check(path, FIT, arrays)
    if "feature_sets" in arrays:
        arrays["feature_sets"] = arrays["feature_sets"].astype(str)
    return Fit(**arrays, attrs=attrs)
