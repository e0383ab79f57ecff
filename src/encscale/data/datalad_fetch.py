"""Fetching files of a DataLad dataset (e.g. the CNeuroMod movie data of Algonauts 2025).

:func:`fetch_dataset` clones the dataset once, installs the subdatasets that hold the wanted
files (the release keeps ``fmri/`` and ``stimuli/`` in subdatasets) and gets their content
with git-annex, then checks that every file is really there.

Two things a workflow does to the worktree are repaired first: Snakemake creates the parent
folders of a job's outputs (so the clone target, or a subdataset's mount point, is no longer
empty, and ``datalad clone`` refuses it) and deletes existing outputs before the job runs (so
a not yet fetched file, a dangling annex symlink in the worktree, is gone and ``datalad get``
reports that the path does not exist). Folders that hold no files are removed before
cloning, and deleted tracked files are checked out again before getting them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from encscale._lazy import optional_import
from encscale.jobs import progress

log = logging.getLogger(__name__)

GIT_ANNEX_HINT = (
    "install it with `apt-get install git-annex` (Debian, Ubuntu) or "
    "`conda install -c conda-forge git-annex`"
)
# Identity for the local bookkeeping commits of git-annex (its branch) when git has none.
FALLBACK_IDENTITY = {"name": "encscale", "email": "encscale@localhost"}


def require_git_annex() -> None:
    """Raise a RuntimeError saying how to install git-annex when it is not on the PATH."""
    if shutil.which("git-annex") is None:
        raise RuntimeError(f"git-annex is needed to fetch DataLad datasets: {GIT_ANNEX_HINT}")


def is_dataset(path: str | os.PathLike) -> bool:
    """Whether ``path`` is the top of an installed DataLad dataset (or git repository)."""
    Dataset = optional_import("datalad.api", "video").Dataset

    return Path(path).is_dir() and Dataset(path).is_installed()


def prune_empty_dirs(path: Path) -> None:
    """Remove the folders under ``path`` that hold no files (at any depth); keep ``path``."""
    if not path.is_dir() or path.is_symlink():
        return
    for child in path.iterdir():
        if child.is_dir() and not child.is_symlink():
            prune_empty_dirs(child)
            with contextlib.suppress(OSError):
                child.rmdir()  # fails, as wanted, when files are left in it


def fetch_dataset(source: str, root: str | Path, paths: list[str], jobs: int = 1) -> None:
    """Clone the DataLad dataset ``source`` (URL or path) into ``root`` if not yet there, then
    get the content of ``paths`` (relative to ``root``), installing the subdatasets they are in.

    Raises FileNotFoundError naming a path that is not in the dataset, and RuntimeError when
    ``source`` cannot be cloned or a file's content cannot be got.
    """
    require_git_annex()
    root = Path(root).absolute()
    paths = [str(Path(p)) for p in paths]
    for p in paths:
        if Path(p).is_absolute() or ".." in Path(p).parts:
            raise ValueError(f"'{p}': paths must be relative to the dataset's root")
    with _git_identity():
        _clone(source, root)
        _install_subdatasets(root, paths)
        _restore_deleted(root, paths)
        fetched = _get(root, paths, jobs)
    for p in paths:
        full = root / p
        if not full.is_file():  # follows the annex symlink: false when the content is absent
            what = "a dangling annex symlink" if full.is_symlink() else "missing or not a file"
            raise RuntimeError(f"{p}: {what} after datalad get in {root}")
        size = full.stat().st_size
        log.info("%s: %s (%d bytes)", p, "fetched" if p in fetched else "already present", size)


def install_dataset(
    source: str, root: str | Path, subdatasets: tuple[str, ...] = ("stimuli",)
) -> None:
    """Clone ``source`` into ``root`` (if not yet there) and install ``subdatasets`` without
    getting any file content, so that their file trees can be listed."""
    require_git_annex()
    root = Path(root).absolute()
    with _git_identity():
        _clone(source, root)
        _install_subdatasets(root, [f"{name}/." for name in subdatasets])


def _clone(source: str, root: Path) -> None:
    """Clone ``source`` into ``root`` unless ``root`` is already a dataset."""
    clone = optional_import("datalad.api", "video").clone

    if is_dataset(root):
        log.info("%s: dataset already installed", root)
        return
    prune_empty_dirs(root)  # the output folders Snakemake made
    log.info("cloning %s into %s", source, root)
    results = clone(
        source=source,
        path=str(root),
        on_failure="ignore",
        result_renderer="disabled",
        return_type="list",
        result_xfm=None,  # result records, not Dataset objects
    )
    failed = [r for r in results if r.get("status") in ("error", "impossible")]
    if failed or not is_dataset(root):
        reason = "; ".join(_message(r) for r in failed) or "no dataset was installed"
        raise RuntimeError(
            f"cannot clone '{source}' into {root}: is it a DataLad dataset (a URL or the path "
            f"of one) and is {root} empty? {reason}"
        )


def _install_subdatasets(root: Path, paths: list[str]) -> None:
    """Install the (nested) subdatasets that contain any of ``paths``."""
    Dataset = optional_import("datalad.api", "video").Dataset

    ds = Dataset(str(root))
    while True:
        absent = ds.subdatasets(
            state="absent",
            recursive=True,
            on_failure="ignore",
            result_renderer="disabled",
            return_type="list",
        )
        wanted = [
            Path(r["path"])
            for r in absent
            if any(_contains(Path(r["path"]), root / p) for p in paths)
        ]
        if not wanted:
            return
        for sub in wanted:
            prune_empty_dirs(sub)
            log.info("installing subdataset %s", sub.relative_to(root))
        results = ds.get(
            [str(s) for s in wanted],
            get_data=False,
            on_failure="ignore",
            result_renderer="disabled",
            return_type="list",
        )
        failed = [r for r in results if r.get("status") in ("error", "impossible")]
        if failed:
            raise RuntimeError(
                "cannot install subdatasets: " + "; ".join(_message(r) for r in failed)
            )


def _restore_deleted(root: Path, paths: list[str]) -> None:
    """Check out again the tracked ``paths`` that were deleted from the worktree."""
    for p in paths:
        full = root / p
        if os.path.lexists(full):
            continue
        owner = _owning_dataset(root, full)
        rel = str(full.relative_to(owner))
        tracked = subprocess.run(
            ["git", "-C", str(owner), "ls-files", "--error-unmatch", "--", rel],
            capture_output=True,
        )
        if tracked.returncode != 0:
            raise FileNotFoundError(f"{p}: no such file in the dataset at {root}")
        log.info("%s: restoring the deleted worktree file", p)
        subprocess.run(
            ["git", "-C", str(owner), "checkout", "--", rel], check=True, capture_output=True
        )


def _get(root: Path, paths: list[str], jobs: int) -> set[str]:
    """``datalad get`` the content of ``paths``; return those whose content was transferred.
    Progress (files done of ``paths``) is logged as their results come in."""
    Dataset = optional_import("datalad.api", "video").Dataset

    results = []
    with progress(total=len(paths), desc="datalad get", unit="files", write=log.info) as files:
        for result in Dataset(str(root)).get(
            paths,
            jobs=jobs,
            on_failure="ignore",
            result_renderer="disabled",
            return_type="generator",
        ):
            results.append(result)
            if result.get("action") == "get" and result.get("type") == "file":
                files.update()
    failed = [r for r in results if r.get("status") in ("error", "impossible")]
    if failed:
        raise RuntimeError("datalad get failed: " + "; ".join(_message(r) for r in failed))
    got = {
        _where(Path(r["path"]))
        for r in results
        if r.get("action") == "get" and r.get("type") == "file" and r.get("status") == "ok"
    }
    return {p for p in paths if _where(root / p) in got}


def _where(path: Path) -> tuple[str, str]:
    """A file's folder with symlinks resolved, and its name (the file may be a symlink)."""
    return os.path.realpath(path.parent), path.name


def _owning_dataset(root: Path, path: Path) -> Path:
    """The deepest installed dataset under ``root`` (or ``root``) that contains ``path``."""
    for parent in path.parents:
        if (parent / ".git").exists() or parent == root:
            return parent
    return root


def _contains(folder: Path, path: Path) -> bool:
    return path == folder or folder in path.parents


def _message(result: dict) -> str:
    """A datalad result as 'path: message' (its message may be a format tuple)."""
    message = result.get("message", result.get("status"))
    if isinstance(message, tuple | list) and message:
        with contextlib.suppress(TypeError):
            message = message[0] % tuple(message[1:])
    return f"{result.get('path')}: {message}"


@contextlib.contextmanager
def _git_identity() -> Iterator[None]:
    """Give git (and git-annex under it) an identity for its bookkeeping commits when it has
    none, through the environment, for the duration of the block."""
    check = subprocess.run(["git", "var", "GIT_COMMITTER_IDENT"], capture_output=True)
    if check.returncode == 0:
        yield
        return
    log.info("git has no user identity; using %s for local commits", FALLBACK_IDENTITY)
    added = {}
    for role in ("AUTHOR", "COMMITTER"):
        for key in ("name", "email"):
            var = f"GIT_{role}_{key.upper()}"
            if var not in os.environ:
                added[var] = FALLBACK_IDENTITY[key]
    os.environ.update(added)
    try:
        yield
    finally:
        for var in added:
            os.environ.pop(var, None)
