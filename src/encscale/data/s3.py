"""Verified, resumable downloads from S3 (NSD's public bucket), and seekable remote reads.

:func:`fetch_object` writes ``<dest>.part`` beside ``<dest>``, with ``<dest>.part.json``
recording the ETag and size of the object it belongs to, and renames it to ``<dest>`` only
when its size, its ETag (the MD5 of the data, or the multipart form of it) and, if given, its
SHA-256 all match. An interrupted download resumes from the part's length when the object is
unchanged; a changed object is never spliced onto old bytes (``If-Match`` on every GET).

Transient failures (dropped connections, timeouts, 5xx and SlowDown answers) are retried
``S3Source.retries`` times with exponential backoff, each retry resuming where the last one
stopped. botocore's own retries are turned off for these transfers so that every retry
resumes from the right byte and is logged.

:func:`open_remote` gives a read-only, seekable file object over an object (ranged GETs),
e.g. for ``h5py.File(open_remote(source, key), "r")``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import boto3
import urllib3.exceptions
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    IncompleteReadError,
    ReadTimeoutError,
    ResponseStreamingError,
)

log = logging.getLogger(__name__)

MiB = 2**20
BACKOFF_BASE_S = 0.5  # delay before retry k (0-based) is BACKOFF_BASE_S * 2**k ...
BACKOFF_MAX_S = 8.0  # ... capped at this
CONNECT_TIMEOUT_S = 10
READ_TIMEOUT_S = 60
PROGRESS_STEP_MAX = 256 * MiB  # progress is logged every 10% of the object, or this often
# Part sizes (MiB) tried for a multipart ETag when the store does not report the part size:
# the defaults of the usual upload tools (aws cli 8, s3cmd 15, rclone 5, ...).
FALLBACK_PART_SIZES_MIB = (8, 16, 5, 15, 64, 100)
MANIFEST_HEADER = ("key", "size", "sha256")

_CREDENTIALS = ("anonymous", "default")
_MD5_ETAG = re.compile(r"[0-9a-f]{32}")
_MULTIPART_ETAG = re.compile(r"([0-9a-f]{32})-(\d+)")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
_TRANSIENT_CODES = {
    "SlowDown",
    "RequestTimeout",
    "InternalError",
    "ServiceUnavailable",
    "Throttling",
    "ThrottlingException",
}
_TRANSIENT_ERRORS = (
    IncompleteReadError,
    ResponseStreamingError,
    ReadTimeoutError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ConnectionClosedError,
    urllib3.exceptions.ProtocolError,
    urllib3.exceptions.ReadTimeoutError,
    OSError,  # socket errors; only network calls run inside _network_errors()
)

T = TypeVar("T")


@dataclass(frozen=True)
class S3Source:
    """A bucket on AWS or on an S3-compatible endpoint, and how to talk to it."""

    bucket: str
    endpoint_url: str | None = None  # None: AWS; e.g. "http://127.0.0.1:9000" for a mirror
    region: str | None = None  # e.g. "us-east-2"
    credentials: str = "anonymous"  # "anonymous" (unsigned) or "default" (boto3's chain)
    retries: int = 5  # attempts after the first on transient errors

    def __post_init__(self) -> None:
        if not isinstance(self.bucket, str) or not self.bucket:
            raise ValueError(f"S3 source: bucket must be a non-empty string, got {self.bucket!r}")
        if self.credentials not in _CREDENTIALS:
            raise ValueError(
                f"S3 source: credentials must be one of {_CREDENTIALS}, got {self.credentials!r}"
            )
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            raise ValueError(f"S3 source: retries must be an integer >= 0, got {self.retries!r}")

    @classmethod
    def from_config(cls, cfg: dict) -> S3Source:
        """Build from a config mapping; unknown keys raise ValueError.

        Keys: bucket (required), endpoint_url, region, credentials, retries.
        """
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(cfg) - set(known))
        if unknown:
            raise ValueError(f"S3 source config: unknown keys {unknown}; known keys are {known}")
        if "bucket" not in cfg:
            raise ValueError("S3 source config: 'bucket' is required")
        return cls(**cfg)

    def url(self, key: str) -> str:
        """``s3://bucket/key``."""
        return f"s3://{self.bucket}/{key}"

    def client(self, *, sdk_retries: int | None = None):
        """A new boto3 S3 client (unsigned requests when anonymous).

        ``sdk_retries``: retries botocore makes by itself (default ``self.retries``);
        :func:`fetch_object` and :func:`open_remote` pass 0 and retry themselves.
        """
        config = Config(
            signature_version=UNSIGNED if self.credentials == "anonymous" else None,
            retries={
                "max_attempts": self.retries if sdk_retries is None else sdk_retries,
                "mode": "standard",
            },
            connect_timeout=CONNECT_TIMEOUT_S,
            read_timeout=READ_TIMEOUT_S,
            s3={"addressing_style": "path"} if self.endpoint_url else None,
        )
        session = boto3.session.Session()
        return session.client(
            "s3", endpoint_url=self.endpoint_url, region_name=self.region, config=config
        )


def fetch_object(
    source: S3Source,
    key: str,
    dest: str | os.PathLike,
    *,
    sha256: str | None = None,
    chunk_size: int = 8 * MiB,
) -> dict:
    """Download s3://bucket/key to dest, verified; returns a record.

    The record: ``{key, url, size (bytes), etag, md5 (hex, or None for a multipart or opaque
    ETag), sha256 (hex of the file), resumed_from (bytes already on disk from an earlier
    run)}``. Raises FileNotFoundError for a missing object, ConnectionError when retries run
    out (the partial download is kept for the next run), ValueError when verification fails
    (nothing is written); each is also logged at ERROR.
    """
    url = source.url(key)
    dest = Path(dest)
    expected_sha256 = _expected_sha256(sha256, url)
    if chunk_size <= 0:
        raise ValueError(f"{url}: chunk_size must be positive, got {chunk_size}")
    client = source.client(sdk_retries=0)
    try:
        return _fetch(client, source, key, dest, expected_sha256, chunk_size)
    except (OSError, ValueError) as err:
        log.error("%s", err)  # the job's log names the object and the reason
        raise
    finally:
        client.close()


def _fetch(
    client, source: S3Source, key: str, dest: Path, expected_sha256: str | None, chunk_size: int
) -> dict:
    """:func:`fetch_object` with a client: HEAD, resume or start the part, download, verify."""
    url = source.url(key)
    part = dest.with_name(dest.name + ".part")
    record = dest.with_name(dest.name + ".part.json")
    head = _head(client, source, key, url)
    size, etag = head["ContentLength"], _unquote_etag(head["ETag"])
    kind = _etag_kind(etag, head)
    part_sizes = []
    if kind == "multipart":
        part_sizes = _part_sizes(client, source, key, url, size, etag)
    elif kind == "opaque":
        log.info("%s: ETag %s is not an MD5 of the data; not verifiable by ETag", url, etag)

    dest.parent.mkdir(parents=True, exist_ok=True)
    resumed_from = _prepare_part(part, record, size, etag, url)
    start = time.monotonic()
    try:
        _download(client, source, key, url, part, record, dest, size, etag, chunk_size)
    except ConnectionError as err:
        raise ConnectionError(
            f"{err}; the partial download {part} is kept and the next run resumes from it"
        ) from err
    downloaded_s = time.monotonic() - start

    sums = _hash_file(part, chunk_size, md5=kind == "md5", part_sizes=part_sizes)
    problems = _mismatches(sums, size, etag, kind, expected_sha256)
    if problems:
        raise _refuse(part, record, url, dest, problems)
    os.replace(part, dest)
    record.unlink(missing_ok=True)

    moved_mb = (size - resumed_from) / 1e6
    log.info(
        "%s: %d bytes -> %s; %.1f MB downloaded in %.1f s (%.1f MB/s), verified in %.1f s",
        url,
        size,
        dest,
        moved_mb,
        downloaded_s,
        moved_mb / max(downloaded_s, 1e-6),
        time.monotonic() - start - downloaded_s,
    )
    return {
        "key": key,
        "url": url,
        "size": size,
        "etag": etag,
        "md5": sums["md5"],
        "sha256": sums["sha256"],
        "resumed_from": resumed_from,
    }


def open_remote(source: S3Source, key: str, buffer_size: int = MiB) -> io.BufferedReader:
    """A read-only, seekable file object over s3://bucket/key (ranged GETs).

    Reads of ``buffer_size`` bytes or more go to the network as they are; smaller reads are
    served from a buffer of that size. Usable as ``h5py.File(open_remote(...), "r")``.
    """
    return io.BufferedReader(_RemoteObject(source, key), buffer_size)


def read_manifest(path: str | os.PathLike) -> dict[str, tuple[int, str]]:
    """Read a TSV with header ``key<TAB>size<TAB>sha256``: {key: (size in bytes, sha256 hex)}.

    Blank lines are skipped; errors name the file and the line.
    """
    path = Path(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines or tuple(lines[0].split("\t")) != MANIFEST_HEADER:
        got = lines[0] if lines else "an empty file"
        raise ValueError(f"{path}:1: expected the header 'key<TAB>size<TAB>sha256', got {got!r}")
    entries: dict[str, tuple[int, str]] = {}
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 3:
            raise ValueError(
                f"{path}:{lineno}: expected 3 tab-separated fields (key, size, sha256), "
                f"got {len(fields)}: {line!r}"
            )
        key, size, digest = fields[0], fields[1].strip(), fields[2].strip().lower()
        if not key:
            raise ValueError(f"{path}:{lineno}: empty key")
        if not size.isdigit():
            raise ValueError(f"{path}:{lineno}: size {size!r} is not a non-negative integer")
        if not _SHA256.fullmatch(digest):
            raise ValueError(f"{path}:{lineno}: sha256 {digest!r} is not 64 hex digits")
        if key in entries:
            raise ValueError(f"{path}:{lineno}: key {key!r} is listed twice")
        entries[key] = (int(size), digest)
    return entries


# --- retries -----------------------------------------------------------------------------


class _Transient(Exception):
    """A failure worth retrying; the original error is its ``__cause__``."""


def _status(err: ClientError) -> int | None:
    return err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")


def _code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


def _is_transient(err: ClientError) -> bool:
    status = _status(err)
    return (status is not None and status >= 500) or _code(err) in _TRANSIENT_CODES


@contextlib.contextmanager
def _network_errors() -> Iterator[None]:
    """Re-raise transient network failures of the block as :class:`_Transient`."""
    try:
        yield
    except ClientError as err:
        if _is_transient(err):
            raise _Transient(str(err)) from err
        raise
    except _TRANSIENT_ERRORS as err:
        raise _Transient(f"{type(err).__name__}: {err}") from err


def _backoff_s(retry: int) -> float:
    """Delay (s) before retry number ``retry`` (0-based)."""
    return min(BACKOFF_BASE_S * 2**retry, BACKOFF_MAX_S)


def _with_retries(
    source: S3Source, url: str, attempt: Callable[[], T], where: Callable[[], str]
) -> T:
    """Call ``attempt`` until it succeeds, retrying :class:`_Transient` failures.

    ``where()`` describes the position for messages (e.g. "at byte 123 of 456").
    """
    failures = 0
    while True:
        try:
            return attempt()
        except _Transient as err:
            failures += 1
            if failures > source.retries:
                raise ConnectionError(
                    f"{url}: gave up {where()} after {failures} attempts: {err}"
                ) from err.__cause__
            delay = _backoff_s(failures - 1)
            log.warning(
                "%s: %s: %s; retry %d of %d in %.1f s",
                url,
                where(),
                err,
                failures,
                source.retries,
                delay,
            )
            time.sleep(delay)


def _client_error(err: ClientError, url: str, action: str) -> OSError:
    """The error to raise for a non-transient S3 error answer, naming ``url``."""
    status, code = _status(err), _code(err)
    if status == 404 or code in ("NoSuchKey", "NoSuchBucket", "NotFound"):
        what = "no such bucket" if code == "NoSuchBucket" else "no such object"
        return FileNotFoundError(f"{url}: {what} ({action} answered {status} {code})")
    if status == 403:
        return PermissionError(
            f"{url}: access denied ({action} answered {status} {code}); "
            "check the source's credentials setting"
        )
    if status == 412:
        return OSError(
            f"{url}: the object changed on the server during the transfer (its ETag no longer "
            "matches the one read at the start); run again to fetch the new version"
        )
    return OSError(f"{url}: {action} failed: {err}")


def _head(client, source: S3Source, key: str, url: str, **params) -> dict:
    """head_object with retries; errors name ``url``."""

    def attempt() -> dict:
        with _network_errors():
            return client.head_object(Bucket=source.bucket, Key=key, **params)

    try:
        return _with_retries(source, url, attempt, lambda: "HEAD")
    except ClientError as err:
        raise _client_error(err, url, "HEAD") from err


# --- ETags and hashes --------------------------------------------------------------------


def _unquote_etag(etag: str) -> str:
    return etag.strip().strip('"').lower()


def _etag_kind(etag: str, head: dict) -> str:
    """'md5' (MD5 of the data), 'multipart' (``<md5 of part md5s>-N``) or 'opaque'."""
    if head.get("SSECustomerAlgorithm") or str(head.get("ServerSideEncryption", "")).startswith(
        "aws:kms"
    ):
        return "opaque"  # ETags of KMS- or customer-key-encrypted objects are not MD5s
    if _MD5_ETAG.fullmatch(etag):
        return "md5"
    if _MULTIPART_ETAG.fullmatch(etag):
        return "multipart"
    return "opaque"


def _part_sizes(client, source: S3Source, key: str, url: str, size: int, etag: str) -> list[int]:
    """Part sizes (bytes) to check a multipart ETag with: the store's, else plausible ones."""
    n_parts = int(_MULTIPART_ETAG.fullmatch(etag)[2])

    def gives_n_parts(part_size: int) -> bool:
        return part_size > 0 and -(-size // part_size) == n_parts

    if n_parts == 1:
        return [max(size, 1)]
    try:
        head = _head(client, source, key, url, PartNumber=1)
        part_size = head.get("ContentLength", 0)
        if ("PartsCount" in head or part_size < size) and gives_n_parts(part_size):
            return [part_size]
    except OSError as err:
        log.info("%s: HEAD with partNumber=1 failed (%s)", url, err)
    candidates = [p * MiB for p in FALLBACK_PART_SIZES_MIB if gives_n_parts(p * MiB)]
    if not candidates:
        raise ValueError(
            f"{url}: refused, nothing written: multipart ETag {etag} cannot be verified; the "
            f"store does not report the part size and none of {FALLBACK_PART_SIZES_MIB} MiB "
            f"splits {size} bytes into {n_parts} parts"
        )
    log.info(
        "%s: the store does not report the part size of ETag %s; trying %s bytes",
        url,
        etag,
        candidates,
    )
    return candidates


class _PartMd5:
    """MD5s of consecutive ``part_size``-byte parts of a stream fed in arbitrary chunks."""

    def __init__(self, part_size: int):
        self.part_size = part_size
        self.digests: list[bytes] = []
        self._md5 = hashlib.md5()
        self._filled = 0

    def update(self, data: memoryview) -> None:
        while len(data):
            take = min(len(data), self.part_size - self._filled)
            self._md5.update(data[:take])
            self._filled += take
            data = data[take:]
            if self._filled == self.part_size:
                self.digests.append(self._md5.digest())
                self._md5, self._filled = hashlib.md5(), 0

    def etag(self) -> str:
        """``<md5 of the concatenated part MD5s>-<number of parts>``."""
        digests = self.digests + ([self._md5.digest()] if self._filled else [])
        return f"{hashlib.md5(b''.join(digests)).hexdigest()}-{len(digests)}"


def _hash_file(path: Path, chunk_size: int, *, md5: bool, part_sizes: list[int]) -> dict:
    """One pass over ``path``: {size, sha256, md5 (or None), multipart: {part size: ETag}}."""
    sha = hashlib.sha256()
    whole_md5 = hashlib.md5() if md5 else None
    parts = {p: _PartMd5(p) for p in part_sizes}
    buffer = bytearray(min(chunk_size, 64 * MiB))
    size = 0
    with open(path, "rb") as f:
        while n := f.readinto(buffer):
            chunk = memoryview(buffer)[:n]
            sha.update(chunk)
            if whole_md5 is not None:
                whole_md5.update(chunk)
            for hasher in parts.values():
                hasher.update(chunk)
            size += n
    return {
        "size": size,
        "sha256": sha.hexdigest(),
        "md5": whole_md5.hexdigest() if whole_md5 is not None else None,
        "multipart": {p: h.etag() for p, h in parts.items()},
    }


def _mismatches(
    sums: dict, size: int, etag: str, kind: str, expected_sha256: str | None
) -> list[str]:
    """What differs between the downloaded data and what it should be (empty: all good)."""
    problems = []
    if sums["size"] != size:
        problems.append(f"size {sums['size']} bytes != {size} bytes announced by the server")
    if kind == "md5" and sums["md5"] != etag:
        problems.append(f"MD5 of the data {sums['md5']} != ETag {etag}")
    if kind == "multipart" and etag not in sums["multipart"].values():
        got = ", ".join(f"{e} with {p}-byte parts" for p, e in sums["multipart"].items())
        problems.append(f"multipart MD5 of the data ({got}) != ETag {etag}")
    if expected_sha256 is not None and sums["sha256"] != expected_sha256:
        problems.append(f"SHA-256 of the data {sums['sha256']} != expected {expected_sha256}")
    return problems


def _expected_sha256(sha256: str | None, url: str) -> str | None:
    if sha256 is None:
        return None
    digest = sha256.strip().lower()
    if not _SHA256.fullmatch(digest):
        raise ValueError(f"{url}: expected sha256 {sha256!r} is not 64 hex digits")
    return digest


# --- the download ------------------------------------------------------------------------


def _prepare_part(part: Path, record: Path, size: int, etag: str, url: str) -> int:
    """Bytes already in ``part`` that can be kept (0 after discarding a stale one)."""
    wanted = {"etag": etag, "size": size}
    if part.exists():
        have = part.stat().st_size
        if _read_record(record) == wanted and have <= size:
            if have:
                log.info("%s: resuming at %d bytes of %d (%s)", url, have, size, part)
            return have
        log.info(
            "%s: discarding stale partial download %s (%d bytes, record %s; the object now "
            "has ETag %s and %d bytes)",
            url,
            part,
            have,
            _read_record(record),
            etag,
            size,
        )
        part.unlink()
    record.write_text(json.dumps(wanted))
    part.touch()
    return 0


def _read_record(record: Path) -> dict | None:
    try:
        return json.loads(record.read_text())
    except (OSError, ValueError):
        return None


def _discard(part: Path, record: Path) -> None:
    part.unlink(missing_ok=True)
    record.unlink(missing_ok=True)


def _refuse(part: Path, record: Path, url: str, dest: Path, problems: list[str]) -> ValueError:
    """Delete the part and its record; the error to raise."""
    _discard(part, record)
    return ValueError(f"{url}: refused, nothing written to {dest}: {'; '.join(problems)}")


def _human(n_bytes: int) -> str:
    """A byte count for messages: "512 B", "1.2 kB", "3.4 MB", "37.21 GB"."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n_bytes >= scale:
            return (
                f"{n_bytes / scale:.2f} {unit}" if unit == "GB" else f"{n_bytes / scale:.1f} {unit}"
            )
    return f"{n_bytes} B"


class _Progress:
    """Logs progress every ~10% of the object, or every 256 MiB for large objects."""

    def __init__(self, url: str, size: int, done: int):
        self.url, self.size = url, size
        self.step = max(1, min(size // 10, PROGRESS_STEP_MAX))
        self.next = (done // self.step + 1) * self.step

    def update(self, done: int) -> None:
        if done >= self.next:
            log.info(
                "%s: %s of %s (%.0f%%)",
                self.url,
                _human(done),
                _human(self.size),
                100 * done / self.size,
            )
            self.next = (done // self.step + 1) * self.step


def _download(client, source, key, url, part, record, dest, size, etag, chunk_size) -> None:
    """Append the rest of the object to ``part`` (from its length), retrying transient errors."""
    progress = _Progress(url, size, part.stat().st_size)

    def attempt() -> None:
        offset = part.stat().st_size
        if offset >= size:
            return
        try:
            with _network_errors():
                response = client.get_object(
                    Bucket=source.bucket, Key=key, Range=f"bytes={offset}-", IfMatch=f'"{etag}"'
                )
        except ClientError as err:
            if _status(err) == 412:
                _discard(part, record)
            raise _client_error(err, url, "GET") from err
        body = response["Body"]
        try:
            start = _body_start(response, offset, size, url)
            received = _stream(body, part, start, size, chunk_size, progress)
        finally:
            body.close()
        if received > size:
            raise _refuse(part, record, url, dest, [f"the server sent more than {size} bytes"])
        if received < size:
            raise _Transient(f"the body ended at byte {received} of {size}")

    _with_retries(source, url, attempt, lambda: f"at byte {part.stat().st_size} of {size}")


def _body_start(response: dict, offset: int, size: int, url: str) -> int:
    """The byte the response body starts at: ``offset``, or 0 if the Range was ignored."""
    content_range = response.get("ContentRange")
    if content_range is None:
        if offset:
            log.warning("%s: the server ignored the Range header; starting over at byte 0", url)
        return 0
    match = _CONTENT_RANGE.fullmatch(content_range)
    if not match or int(match[1]) != offset or match[3] not in (str(size), "*"):
        raise OSError(
            f"{url}: asked for bytes {offset}- of {size}, the server answered {content_range!r}"
        )
    return offset


def _stream(body, part: Path, start: int, size: int, chunk_size: int, progress) -> int:
    """Write the body into ``part`` from byte ``start``; the byte count reached.

    Stops (without writing the excess) as soon as the data would pass ``size``.
    """
    done = start
    with open(part, "r+b") as out:
        out.seek(start)
        out.truncate()
        while True:
            with _network_errors():
                data = body.read(chunk_size)
            if not data:
                break
            if done + len(data) > size:
                return done + len(data)
            out.write(data)
            done += len(data)
            progress.update(done)
        out.flush()
        os.fsync(out.fileno())
    return done


# --- remote reads ------------------------------------------------------------------------


class _RemoteObject(io.RawIOBase):
    """Raw, read-only, seekable access to one S3 object through ranged GETs."""

    def __init__(self, source: S3Source, key: str):
        super().__init__()
        self.url = self.name = source.url(key)
        self._source, self._key = source, key
        self._client = source.client(sdk_retries=0)
        try:
            head = _head(self._client, source, key, self.url)
        except BaseException:
            self._client.close()
            raise
        self.size: int = head["ContentLength"]
        self.etag = _unquote_etag(head["ETag"])
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        if base + offset < 0:
            raise ValueError(f"{self.url}: negative seek position {base + offset}")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer) -> int:
        if self.closed:
            raise ValueError(f"{self.url}: I/O operation on a closed file")
        with memoryview(buffer) as raw_view, raw_view.cast("B") as view:
            n = max(0, min(len(view), self.size - self._pos))
            if n:
                self._read_span(view, self._pos, n)
        self._pos += n
        return n

    def close(self) -> None:
        if not self.closed:
            self._client.close()
        super().close()

    def _read_span(self, view: memoryview, start: int, n: int) -> None:
        """Fill ``view[:n]`` with bytes ``start .. start + n - 1``, retrying transient errors."""
        filled = 0

        def attempt() -> None:
            nonlocal filled
            first = start + filled
            try:
                with _network_errors():
                    response = self._client.get_object(
                        Bucket=self._source.bucket,
                        Key=self._key,
                        Range=f"bytes={first}-{start + n - 1}",
                        IfMatch=f'"{self.etag}"',
                    )
            except ClientError as err:
                raise _client_error(err, self.url, "GET") from err
            body = response["Body"]
            try:
                if not str(response.get("ContentRange", "")).startswith(f"bytes {first}-"):
                    raise OSError(
                        f"{self.url}: asked for bytes {first}-{start + n - 1}, the server "
                        f"answered {response.get('ContentRange')!r}"
                    )
                while filled < n:
                    with _network_errors():
                        data = body.read(n - filled)
                    if not data:
                        raise _Transient(f"the body ended at byte {start + filled}")
                    view[filled : filled + len(data)] = data
                    filled += len(data)
            finally:
                body.close()

        _with_retries(
            self._source, self.url, attempt, lambda: f"at byte {start + filled} of {self.size}"
        )
