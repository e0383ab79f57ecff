"""What every workflow job does around its one call into the package: its log file (with
timestamps, the ``encscale`` loggers and Python warnings, and the traceback of a failure),
torch's thread count, and its provenance.

A Snakemake script enters the job's setting first and imports the package's modules inside
it, so that a failure while importing them (a broken torch, a missing library) is in the
job's log too::

    from encscale.jobs import job_context

    with job_context(snakemake, torch_threads=snakemake.threads) as provenance:
        from encscale.encoding.fit import fit_encoding

        fit_encoding(..., provenance=provenance)

The log says why a job ended: a line at the start (``job start:`` rule, wildcards, threads,
declared resources, host and process), a line at the end (``job end:`` ok or failed, its
duration and peak memory) and, on a failure, the full traceback before it. SIGTERM (Slurm's
time limit, ``scancel``) ends the job as a failure with that end line; a fatal error of the
interpreter (a segmentation fault in a compiled library) writes the Python stack to the log.
A log without an end line is a job that was killed outright (SIGKILL: out of memory, or the
scheduler after SIGTERM was not heeded).

Long loops report through :func:`progress`: a line with the count, rate and time left at
most every :data:`PROGRESS_INTERVAL_S` seconds, in the job's log.
"""

from __future__ import annotations

import faulthandler
import logging
import os
import resource
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from io import StringIO
from pathlib import Path
from typing import Any

from tqdm.std import tqdm

from encscale.provenance import job_provenance

log = logging.getLogger(__name__)
LOGGERS = ("encscale", "py.warnings")
LOG_FORMAT = "%(asctime)s %(name)s %(levelname)s: %(message)s"
# Declared resources shown in a job's start line, where the rule has them (runtime: minutes).
RESOURCES = ("mem_mb", "runtime", "gpu", "gpu_mem_mb")
PROGRESS_INTERVAL_S = 30.0  # the most often a progress line is written
EXIT_SIGTERM = 128 + signal.SIGTERM  # a shell's exit status for a process ended by SIGTERM


class JobTerminated(SystemExit):
    """SIGTERM reached the job: Slurm's time limit, ``scancel``, or a cancelled workflow.

    A :class:`SystemExit` (code 143, as when SIGTERM ends a process), so that code catching
    ``Exception`` does not swallow it and ``finally`` blocks (temporary files) still run.
    """

    def __init__(self) -> None:
        super().__init__(EXIT_SIGTERM)

    def __str__(self) -> str:
        return "SIGTERM received (a time limit, scancel or a cancelled workflow)"


@contextmanager
def log_to_file(path: str | Path) -> Iterator[None]:
    """Inside the block, send the ``encscale`` loggers and Python warnings to ``path``
    (appending), at INFO; the loggers and warnings are restored after it."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    loggers = [logging.getLogger(name) for name in LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    logging.captureWarnings(True)
    try:
        yield
    finally:
        logging.captureWarnings(False)
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)
        handler.close()


@contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    """Torch's intra-op thread count set to ``n`` inside the block. Torch is never imported
    here: with ``n`` None it is untouched; not yet imported, it takes ``n`` threads from
    ``OMP_NUM_THREADS`` when the block imports it."""
    if n is None:
        yield
        return
    torch = sys.modules.get("torch")
    if torch is None:
        with _environ(OMP_NUM_THREADS=str(n)):
            yield
        return

    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextmanager
def _environ(**values: str) -> Iterator[None]:
    """Environment variables set inside the block, restored after it."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    """Inside the block, SIGTERM raises :class:`JobTerminated` in this process (signals can
    only be handled in the main thread: elsewhere nothing changes). A process forked inside
    the block (a data loader's worker) still ends on SIGTERM as before."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    owner = os.getpid()

    def handler(signum: int, frame: Any) -> None:
        if os.getpid() != owner:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        raise JobTerminated

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def _fault_stacks(path: str | Path) -> Iterator[None]:
    """A fatal error of the interpreter (segmentation fault, abort) inside the block writes
    the Python stack of every thread to ``path``; left as it is if already enabled."""
    if faulthandler.is_enabled():
        yield
        return
    with open(path, "a") as file:
        faulthandler.enable(file)
        try:
            yield
        finally:
            faulthandler.disable()


def start_line(snakemake: Any) -> str:
    """The first line of a job's log: ``job start: rule R (wildcards); threads N; declared
    resources; host H, pid P``."""
    wildcards = _items(getattr(snakemake, "wildcards", None))
    declared = _items(getattr(snakemake, "resources", None))
    resources = [
        f"{name} {declared[name]}" + (" min" if name == "runtime" else "")
        for name in RESOURCES
        if declared.get(name) is not None
    ]
    return "; ".join(
        [
            f"job start: rule {snakemake.rule} ("
            + (", ".join(f"{k}={v}" for k, v in wildcards.items()) or "no wildcards")
            + ")",
            f"threads {getattr(snakemake, 'threads', '?')}",
            ", ".join(resources) or "no resources declared",
            f"host {socket.gethostname()}, pid {os.getpid()}",
        ]
    )


def end_line(rule: str, seconds: float, error: BaseException | None = None) -> str:
    """The last line of a job's log: ``job end: rule R ok after S s; peak memory …`` or
    ``job end: rule R failed (Error: first line of its message) after S s; …``."""
    if error is None:
        outcome = "ok"
    else:
        message = str(error).strip().splitlines()
        reason = type(error).__name__ + (f": {message[0][:300]}" if message else "")
        outcome = f"failed ({reason})"
    return f"job end: rule {rule} {outcome} after {seconds:.1f} s; peak memory {peak_memory()}"


def peak_rss_bytes() -> int:
    """This process's peak resident memory (bytes): /proc's VmHWM on Linux (``ru_maxrss``
    keeps a forking parent's peak across exec), else ``ru_maxrss``."""
    try:
        with open("/proc/self/status") as status:
            return next(int(x.split()[1]) * 1024 for x in status if x.startswith("VmHWM:"))
    except (OSError, StopIteration):
        scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def peak_memory() -> str:
    """The process's peak resident set and its largest finished child's (MiB), and torch's
    peak CUDA memory where torch is imported and CUDA initialised (torch is never imported
    here). A child counts the pages it shared with this process when forked: a small command
    run late in a large job reports about the job's size."""
    scale = 2**20 if sys.platform == "darwin" else 2**10  # ru_maxrss: bytes on macOS, KiB
    own = peak_rss_bytes() / 2**20
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / scale
    text = f"{own:.0f} MiB resident (children {children:.0f} MiB)"
    torch = sys.modules.get("torch")
    try:
        if torch is not None and torch.cuda.is_initialized():
            allocated = torch.cuda.max_memory_allocated() / 2**20
            reserved = torch.cuda.max_memory_reserved() / 2**20
            text += f", CUDA {allocated:.0f} MiB allocated ({reserved:.0f} MiB reserved)"
    except Exception as err:  # a broken CUDA context must not hide the job's end
        text += f", CUDA unknown ({type(err).__name__})"
    return text


@contextmanager
def job_context(snakemake: Any, *, torch_threads: int | None = None) -> Iterator[dict[str, Any]]:
    """The setting of one Snakemake job; yields its provenance
    (:func:`encscale.provenance.job_provenance`).

    Inside the block the ``encscale`` loggers and warnings go to the rule's log
    (``snakemake.log[0]``, :func:`log_to_file`), which gets the job's start and end lines
    (:func:`start_line`, :func:`end_line`), and torch uses ``torch_threads`` threads (None,
    for jobs without torch). An exception leaving the block (SIGTERM's
    :class:`JobTerminated` included) is written with its traceback to the log, then raised
    again.
    """
    if not snakemake.log:
        raise ValueError(f"rule {snakemake.rule}: no log file to write the job's log to")
    path = snakemake.log[0]
    with log_to_file(path), ExitStack() as stack:
        started = time.perf_counter()
        try:
            log.info("%s", start_line(snakemake))
            stack.enter_context(_fault_stacks(path))
            stack.enter_context(_sigterm_raises())
            stack.enter_context(_torch_threads(torch_threads))
            yield job_provenance(snakemake)
        except BaseException as err:
            if isinstance(err, SystemExit) and err.code in (0, None):
                log.info("%s", end_line(snakemake.rule, time.perf_counter() - started))
            else:
                log.error("rule %s failed", snakemake.rule, exc_info=err)
                log.error("%s", end_line(snakemake.rule, time.perf_counter() - started, err))
            raise
        log.info("%s", end_line(snakemake.rule, time.perf_counter() - started))


def progress(
    iterable: Iterable[Any] | None = None,
    *,
    total: int | None = None,
    desc: str = "",
    unit: str = "it",
    initial: int = 0,
    interval: float = PROGRESS_INTERVAL_S,
    write: Callable[[str], None] | None = None,
) -> tqdm:
    """A tqdm progress bar that writes lines to the log instead of drawing on a terminal.

    Wrap an iterable (``for fit in progress(paths, desc="reading fits", unit="fits")``) or
    count by hand (``bar = progress(total=n, ...)``, ``bar.update(k)``, ``bar.close()``, or
    as a context manager). A line ``desc: n/total unit (p%), elapsed, rate, ~time left`` is
    written when the bar starts, at most every ``interval`` seconds while it runs (checked
    as it advances), and one with ``done`` (or ``stopped`` short of the total) when it
    closes. ``total`` defaults to the iterable's length; ``initial``: a resumed count.
    ``write``: where the lines go, by default the ``encscale.progress`` logger at INFO.
    """
    return _LogProgress(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        initial=initial,
        mininterval=interval,
        write=write or logging.getLogger("encscale.progress").info,
    )


class _LogProgress(tqdm):
    """tqdm's counting, rate and timing, each display a line given to ``write``."""

    monitor_interval = 0  # no monitor thread: a line is written only as the bar advances

    def __init__(self, *args: Any, write: Callable[[str], None], **kwargs: Any) -> None:
        self._write = write
        self._written_n: int | None = None
        # miniters=1: the time is checked at every step, so a loop that slows down still
        # reports every interval (tqdm's adaptive step count would wait for as many steps)
        super().__init__(*args, file=StringIO(), miniters=1, maxinterval=0, disable=False, **kwargs)

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        closing = self.disable  # tqdm marks the bar disabled just before its last display
        if msg == "" or (not closing and self.total and self.n >= self.total):
            return True  # a full count is reported once, by the closing line
        if closing or self.n != self._written_n:
            self._write(_progress_line(self.format_dict, closing))
            self._written_n = self.n
        return True


def _progress_line(d: Mapping[str, Any], closing: bool) -> str:
    n, total, elapsed, unit = d["n"], d["total"], d["elapsed"], d["unit"]
    rate = d["rate"]
    if rate is None and elapsed:
        rate = (n - d["initial"]) / elapsed
    count = f"{n}/{total} {unit} ({100 * n / total:.0f}%)" if total else f"{n} {unit}"
    parts = [f"{d['prefix']}: {count}" if d["prefix"] else count]
    if elapsed:
        parts.append(f"{tqdm.format_interval(elapsed)} elapsed")
    if rate:
        parts.append(f"{_rate(rate)} {unit}/s")
    if closing:
        parts.append("done" if not total or n >= total else "stopped")
    elif total and rate:
        parts.append(f"~{tqdm.format_interval((total - n) / rate)} left")
    if d["postfix"]:
        parts.append(str(d["postfix"]))
    return ", ".join(parts)


def _rate(rate: float) -> str:
    return f"{rate:.0f}" if rate >= 100 else f"{rate:.1f}" if rate >= 1 else f"{rate:.3g}"


def _items(named: Any) -> dict[str, Any]:
    """The named items of a Snakemake namedlist (``wildcards``, ``resources``) or a mapping."""
    if named is None:
        return {}
    items = named.items() if hasattr(named, "items") else vars(named).items()
    return {str(k): v for k, v in items if not str(k).startswith("_")}
