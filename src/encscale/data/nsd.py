"""The Natural Scenes Dataset's layout and conventions.

Paths of NSD's files under a root (the real bucket or the simulated demo), readers of the
experimental design and the label tables, and NSD's two preprocessing conventions that
both the simulator and the preparation use: z-scoring betas within a session, and the
noise-ceiling SNR (ncsnr) estimated from repeated images.

Subjects are named ``subj01``, ``subj02``, ...; sessions are numbered from 1. The design
file keeps MATLAB's 1-based indices; functions that return image ids say when they are
0-based (the row of ``imgBrick`` in the stimuli file). Paths are returned as ``str`` so that
Snakemake rules can use them as they are.
"""

from __future__ import annotations

import re
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
import scipy.io

from encscale.io import PathLike, require_file

BETA_VERSION = "betas_fithrf_GLMdenoise_RR"
PSC_SCALE = 300.0  # NSD stores betas as int16 percent signal change × 300
# Scan sessions each NSD subject completed (the data release's 40/40/32/30/40/32/40/30).
SESSIONS = {"subj01": 40, "subj02": 40, "subj03": 32, "subj04": 30,
            "subj05": 40, "subj06": 32, "subj07": 40, "subj08": 30}  # fmt: skip
# Distinct images each subject saw in all its sessions (Algonauts 2023's training + test
# images of the subject, which together are those images), the shared images among them
# (the test split), and nsdgeneral's voxels at 1.8 mm, about (for planning).
SEEN_IMAGES = {"subj01": 10000, "subj02": 10000, "subj03": 9375, "subj04": 9174,
               "subj05": 10000, "subj06": 9375, "subj07": 10000, "subj08": 9174}  # fmt: skip
SHARED_IMAGES = 1000
PLANNING_VOXELS = 15000
_SESSION_FILE = re.compile(r"^betas_session(\d+)\.nii\.gz$")


def planned_images(subject: str, sessions: int | None = None) -> tuple[int, int]:
    """(images, shared images) a subject saw in its first ``sessions`` sessions (None: all),
    for planning before its responses exist: :data:`SEEN_IMAGES` scaled by the sessions,
    a tenth of them shared (1,000 of 10,000 over all sessions)."""
    done = SESSIONS[subject]
    n = done if sessions is None else min(int(sessions), done)
    seen = round(SEEN_IMAGES[subject] * n / done)
    return seen, round(SHARED_IMAGES * seen / 10000)


def subject_name(index: int) -> str:
    """0-based subject index → NSD's name: 0 → ``subj01``."""
    return f"subj{index + 1:02d}"


def subject_index(subject: str) -> int:
    """NSD's subject name → 0-based index (its row in ``subjectim``): ``subj01`` → 0."""
    match = re.fullmatch(r"subj(\d\d)", subject)
    if match is None or int(match.group(1)) < 1:
        raise ValueError(f"'{subject}' is not an NSD subject name (subj01, subj02, ...)")
    return int(match.group(1)) - 1


def stimuli_path(root: PathLike) -> str:
    """The stimuli HDF5 (dataset ``imgBrick``, N × H × W × 3 uint8)."""
    return str(Path(root) / "nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5")


def expdesign_path(root: PathLike) -> str:
    """The experimental design (``masterordering``, ``subjectim``, ``sharedix``)."""
    return str(Path(root) / "nsddata/experiments/nsd/nsd_expdesign.mat")


def root_of_expdesign(path: PathLike) -> str:
    """The dataset root of a design file at :func:`expdesign_path` (inverse of that function)."""
    path = Path(path)
    if not str(path).endswith("nsddata/experiments/nsd/nsd_expdesign.mat"):
        raise ValueError(f"{path}: not at NSD's design path nsddata/experiments/nsd/")
    return str(path.parents[3])


def betas_dir(root: PathLike, subject: str, beta_version: str = BETA_VERSION) -> str:
    """Folder of one subject's single-trial betas and ncsnr in 1.8 mm functional space."""
    return str(Path(root) / "nsddata_betas/ppdata" / subject / "func1pt8mm" / beta_version)


def betas_path(root: PathLike, subject: str, session: int, beta_version: str = BETA_VERSION) -> str:
    """Betas of one session (1-based): X × Y × Z × trials, int16, percent signal change × 300."""
    return str(Path(betas_dir(root, subject, beta_version)) / f"betas_session{session:02d}.nii.gz")


def ncsnr_path(root: PathLike, subject: str, beta_version: str = BETA_VERSION) -> str:
    """Noise-ceiling SNR volume (float) of one subject and beta version."""
    return str(Path(betas_dir(root, subject, beta_version)) / "ncsnr.nii.gz")


def fsaverage_ncsnr_path(
    root: PathLike, subject: str, hemi: str, beta_version: str = BETA_VERSION
) -> str:
    """Noise-ceiling SNR of one hemisphere (``lh``/``rh``) on fsaverage's vertices (MGH)."""
    return str(
        Path(root)
        / "nsddata_betas/ppdata"
        / subject
        / "fsaverage"
        / beta_version
        / f"{hemi}.ncsnr.mgh"
    )


def brainmask_path(root: PathLike, subject: str) -> str:
    """Brain mask volume (1 inside the brain, 0 outside) in 1.8 mm functional space."""
    return str(Path(root) / "nsddata/ppdata" / subject / "func1pt8mm/brainmask.nii.gz")


def roi_path(root: PathLike, subject: str, atlas: str) -> str:
    """Label volume of an atlas (``nsdgeneral``, ``streams``, ...): -1 outside the brain."""
    return str(Path(root) / "nsddata/ppdata" / subject / "func1pt8mm/roi" / f"{atlas}.nii.gz")


def ctab_path(root: PathLike, subject: str, atlas: str) -> str:
    """Label table of an atlas: lines ``<label> <name>``."""
    return str(Path(root) / "nsddata/freesurfer" / subject / "label" / f"{atlas}.mgz.ctab")


def read_expdesign(path: PathLike) -> dict[str, np.ndarray]:
    """Read NSD's design file; values stay 1-based, as stored.

    Returns ``masterordering`` (T,), indices into a ``subjectim`` row; ``subjectim``
    (subjects × images), image ids; ``sharedix`` (n_shared,), the ids every subject sees.
    """
    path = require_file(path, "NSD design file")
    try:
        mat = scipy.io.loadmat(path)
    except (OSError, ValueError, TypeError, zlib.error) as err:
        raise ValueError(
            f"{path}: cannot read NSD design file (truncated or not .mat): {err}"
        ) from err
    design = {}
    for key, ndim in (("masterordering", 1), ("subjectim", 2), ("sharedix", 1)):
        if key not in mat:
            raise KeyError(f"{path}: variable '{key}' is missing")
        arr = np.asarray(mat[key])
        arr = arr.ravel() if ndim == 1 else arr
        if arr.ndim != ndim or arr.size == 0 or not np.all(np.isfinite(arr)):
            raise ValueError(f"{path}: '{key}' has shape {np.shape(mat[key])} or non-finite values")
        if arr.min() < 1:
            raise ValueError(f"{path}: '{key}' holds values below 1 (indices are 1-based)")
        design[key] = arr.astype(np.int64)
    if design["masterordering"].max() > design["subjectim"].shape[1]:
        raise ValueError(
            f"{path}: 'masterordering' indexes past the {design['subjectim'].shape[1]}"
        )
    return design


def read_ctab(path: PathLike) -> dict[int, str]:
    """Read a label table (``<label> <name>`` per line) into {label: name}, 0 included."""
    path = require_file(path, "label table")
    table = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split(maxsplit=1)
        if not fields:
            continue
        if len(fields) != 2 or not fields[0].lstrip("-").isdigit():
            raise ValueError(f"{path}: line {number} is not '<label> <name>': {line!r}")
        table[int(fields[0])] = fields[1].strip()
    if not table:
        raise ValueError(f"{path}: label table is empty")
    return table


def subject_image_ids(design: dict[str, np.ndarray], subject: str) -> np.ndarray:
    """0-based ids of the images in a subject's ``subjectim`` row, (n_images,) int64."""
    index = subject_index(subject)
    if index >= design["subjectim"].shape[0]:
        raise ValueError(
            f"{subject} is not in the design ({design['subjectim'].shape[0]} subjects)"
        )
    return design["subjectim"][index] - 1


def trial_image_ids(design: dict[str, np.ndarray], subject: str) -> np.ndarray:
    """0-based image id shown on each trial of a subject, (T,) int64, in trial order."""
    return subject_image_ids(design, subject)[design["masterordering"] - 1]


def session_numbers(root: PathLike, subject: str, beta_version: str = BETA_VERSION) -> list[int]:
    """Numbers of the beta sessions present on disk, 1..n; an error if none or one is missing."""
    folder = Path(betas_dir(root, subject, beta_version))
    found = sorted(
        int(m.group(1))
        for m in (_SESSION_FILE.match(p.name) for p in folder.glob("betas_session*.nii.gz"))
        if m
    )
    if not found:
        raise FileNotFoundError(f"{folder}: no betas_sessionNN.nii.gz files")
    missing = sorted(set(range(1, found[-1] + 1)) - set(found))
    if missing:
        path = betas_path(root, subject, missing[0], beta_version)
        raise FileNotFoundError(f"{path}: beta file is missing (session {found[-1]} is present)")
    return found


def load_nifti(path: PathLike, what: str, ndim: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Read a NIfTI volume whole → (data in its stored dtype, 4×4 affine).

    Errors name the file when it is missing, truncated, not NIfTI, or not ``ndim``-D.
    """
    path = require_file(path, f"{what} file")
    try:
        img = nib.load(path)
        data = np.asanyarray(img.dataobj)
    except (OSError, EOFError, ValueError, zlib.error, nib.filebasedimages.ImageFileError) as err:
        raise ValueError(f"{path}: cannot read {what} (truncated or not NIfTI): {err}") from err
    if data.ndim != ndim:
        raise ValueError(f"{path}: {what} has shape {data.shape}, expected {ndim}-D")
    return data, np.asarray(img.affine, dtype=np.float64)


def zscore_trials(betas: np.ndarray) -> np.ndarray:
    """Z-score each voxel over the trials of one session. (T, V) → (T, V) float32.

    NSD practice before averaging repeats across sessions; a voxel constant over the
    session gets 0.
    """
    betas = np.asarray(betas, dtype=np.float32)
    mean = betas.mean(axis=0, dtype=np.float64)
    sd = betas.std(axis=0, dtype=np.float64)
    scale = np.divide(1.0, sd, out=np.zeros_like(sd), where=sd > 0)
    return ((betas - mean) * scale).astype(np.float32)


def estimate_ncsnr(zbetas: np.ndarray, image_ids: np.ndarray, n_repeats: int) -> np.ndarray:
    """NSD's noise-ceiling SNR from session-z-scored betas. (T, V), (T,) → (V,) float32.

    Over the images shown exactly ``n_repeats`` times, the noise variance is the mean of
    the variance across repeats (ddof=1); signal variance = max(0, 1 − noise variance);
    ncsnr = √signal / √noise (0 where the noise variance is 0).
    """
    order = np.argsort(image_ids, kind="stable")
    counts = np.unique(image_ids, return_counts=True)[1]
    full = np.repeat(counts == n_repeats, counts)
    if not full.any():
        raise ValueError(f"no image is shown {n_repeats} times; ncsnr cannot be estimated")
    trials = zbetas[order[full]].astype(np.float64)
    noise = trials.reshape(-1, n_repeats, trials.shape[1]).var(axis=1, ddof=1).mean(axis=0)
    signal = np.maximum(0.0, 1.0 - noise)
    ncsnr = np.divide(np.sqrt(signal), np.sqrt(noise), out=np.zeros_like(noise), where=noise > 0)
    return ncsnr.astype(np.float32)
