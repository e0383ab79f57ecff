"""A small S3-compatible HTTP server for tests: serves the files under a folder as one bucket.

Path-style addressing only (``/<bucket>/<key>``), anonymous, read-only: HEAD and GET object
with ``Range``, ``If-Match`` and ``partNumber``, and S3's XML error bodies. ETags are the MD5
of the file, or the multipart form ``md5(md5(part_1) + ... + md5(part_N))-N`` for files larger
than ``multipart_threshold``.

Faults are set per key in ``server.faults`` and may be changed while a test runs:

- ``{"cut_after": n}``: the next GET sends the full Content-Length but only ``n`` bytes of
  body, then drops the connection; ``"times": k`` repeats it for k GETs (default 1).
- ``{"corrupt": True}``: flip the middle byte of every body served (headers unchanged).
- ``{"extra": n}``: append ``n`` bytes to every body served (Content-Length includes them).
- ``{"status": 503, "times": k}``: answer the next k requests (HEAD or GET) with that status
  (503 SlowDown, 500 InternalError, 403 AccessDenied, ...); ``"method": "GET"`` (or "HEAD")
  limits it to that method.

Usage::

    with serve_bucket(root, "bucket") as server:
        client = boto3.client("s3", endpoint_url=server.endpoint_url, ...)
        ...
        assert server.requests[-1] == ("GET", "a/b.bin", "bytes=0-")
"""

from __future__ import annotations

import hashlib
import re
import socket
import threading
from email.utils import formatdate
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit
from xml.sax.saxutils import escape

_ERROR_CODES = {
    400: "InvalidRequest",
    403: "AccessDenied",
    404: "NoSuchKey",
    412: "PreconditionFailed",
    416: "InvalidRange",
    500: "InternalError",
    501: "NotImplemented",
    503: "SlowDown",
}
_BLOCK = 2**20  # bytes read from disk per write to the socket


class S3TestServer:
    """A running test server; ``endpoint_url`` is ``http://127.0.0.1:<port>``."""

    def __init__(
        self,
        root: Path,
        bucket: str,
        multipart_threshold: int | None,
        part_size: int,
        answer_part_number: bool,
    ):
        self.root = Path(root).resolve()
        self.bucket = bucket
        self.multipart_threshold = multipart_threshold
        self.part_size = part_size
        self.answer_part_number = answer_part_number
        self.requests: list[tuple[str, str, str | None]] = []
        self.faults: dict[str, dict] = {}
        self._lock = threading.Lock()
        self._etags: dict[tuple[Path, int, int], str] = {}
        self._httpd = _QuietServer(("127.0.0.1", 0), partial(_Handler, self))
        self.endpoint_url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        """Stop serving and close the listening socket."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    def __enter__(self) -> S3TestServer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def etag(self, path: Path) -> str:
        """The ETag (without quotes) of the file at ``path``."""
        st = path.stat()
        cache_key = (path, st.st_size, st.st_mtime_ns)
        with self._lock:
            if cache_key in self._etags:
                return self._etags[cache_key]
        etag = multipart_etag(path, self.part_size) if self._multipart(st.st_size) else _md5(path)
        with self._lock:
            self._etags[cache_key] = etag
        return etag

    def _multipart(self, size: int) -> bool:
        return self.multipart_threshold is not None and size > self.multipart_threshold

    def _log(self, method: str, key: str, byte_range: str | None) -> None:
        with self._lock:
            self.requests.append((method, key, byte_range))

    def _take_fault(self, key: str, kind: str, method: str):
        """The value of fault ``kind`` for ``key`` if it applies now; counts down ``times``."""
        with self._lock:
            fault = self.faults.get(key)
            if not fault or kind not in fault:
                return None
            if kind in ("corrupt", "extra"):
                return fault[kind] if method == "GET" else None
            if kind == "cut_after" and method != "GET":
                return None
            if kind == "status" and fault.get("method", method) != method:
                return None
            value = fault[kind]
            times = fault.get("times", 1) - 1
            if times > 0:
                fault["times"] = times
            else:
                self.faults.pop(key, None)
            return value


def serve_bucket(
    root: Path,
    bucket: str,
    *,
    multipart_threshold: int | None = None,
    part_size: int = 8 * 2**20,
    answer_part_number: bool = True,
) -> S3TestServer:
    """Serve the files under ``root`` as ``bucket`` on 127.0.0.1 (a free port), in a thread.

    ``answer_part_number=False`` makes HEAD ignore ``?partNumber=`` (as some stores do).
    """
    return S3TestServer(root, bucket, multipart_threshold, part_size, answer_part_number)


def multipart_etag(path: Path, part_size: int) -> str:
    """``md5(md5(part_1) + ... + md5(part_N))-N`` of the file cut into ``part_size`` parts."""
    digests = []
    with open(path, "rb") as f:
        while part := f.read(part_size):
            digests.append(hashlib.md5(part).digest())
    return f"{hashlib.md5(b''.join(digests)).hexdigest()}-{len(digests)}"


def _md5(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "md5").hexdigest()


def _parse_range(header: str | None, size: int) -> tuple[int, int] | None | str:
    """``(first, last)`` byte of a ``bytes=`` header; None: whole object; "invalid": 416."""
    if header is None:
        return None
    match = re.fullmatch(r"bytes=(\d*)-(\d*)", header.strip())
    if not match or match.groups() == ("", ""):
        return None  # S3 ignores a malformed Range and answers with the whole object
    first, last = match.groups()
    if first == "":
        length = int(last)
        return (max(size - length, 0), size - 1) if length and size else "invalid"
    first = int(first)
    last = size - 1 if last == "" else min(int(last), size - 1)
    if first >= size or first > last:
        return "invalid"
    return first, last


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        """Ignore clients that hang up (expected with faults); report anything else."""
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError | socket.timeout):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def __init__(self, server_state: S3TestServer, *args, **kwargs):
        self.state = server_state
        super().__init__(*args, **kwargs)

    def log_message(self, format, *args) -> None:
        pass

    def do_HEAD(self) -> None:
        self._object("HEAD")

    def do_GET(self) -> None:
        self._object("GET")

    def _object(self, method: str) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        bucket, _, key = unquote(url.path).lstrip("/").partition("/")
        byte_range = self.headers.get("Range")
        self.state._log(method, key, byte_range)

        if bucket != self.state.bucket:
            return self._error(method, 404, "NoSuchBucket", "The specified bucket does not exist")
        status = self.state._take_fault(key, "status", method)
        if status is not None:
            return self._error(method, status, _ERROR_CODES.get(status, "InternalError"), "fault")
        path = (self.state.root / key).resolve()
        if not key or not path.is_file() or not path.is_relative_to(self.state.root):
            return self._error(method, 404, "NoSuchKey", "The specified key does not exist.")

        size = path.stat().st_size
        etag = self.state.etag(path)
        if_match = self.headers.get("If-Match")
        if if_match is not None and if_match.strip() not in ("*", etag, f'"{etag}"'):
            return self._error(method, 412, "PreconditionFailed", "If-Match did not match")

        headers = {
            "ETag": f'"{etag}"',
            "Last-Modified": formatdate(path.stat().st_mtime, usegmt=True),
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
        }
        span = self._part_span(query, size, headers)
        if span == "invalid":
            return self._error(method, 416, "InvalidPartNumber", "The part number is not valid")
        if span is None:
            span = _parse_range(byte_range, size)
        if span == "invalid":
            headers = {"Content-Range": f"bytes */{size}"}
            return self._error(method, 416, "InvalidRange", "The range is not satisfiable", headers)

        first, last = span if span is not None else (0, size - 1)
        if span is not None:
            headers["Content-Range"] = f"bytes {first}-{last}/{size}"
        self._send_body(method, key, path, first, last, 206 if span is not None else 200, headers)

    def _part_span(self, query: dict, size: int, headers: dict) -> tuple[int, int] | None | str:
        """The byte span of ``?partNumber=k`` (adds the parts count header), if answered."""
        if "partNumber" not in query or not self.state.answer_part_number:
            return None
        number = int(query["partNumber"][0])
        if not self.state._multipart(size):
            return None if number == 1 else "invalid"
        part_size = self.state.part_size
        n_parts = -(-size // part_size)
        if not 1 <= number <= n_parts:
            return "invalid"
        headers["x-amz-mp-parts-count"] = str(n_parts)
        return (number - 1) * part_size, min(number * part_size, size) - 1

    def _send_body(self, method, key, path, first, last, status, headers) -> None:
        length = last - first + 1
        extra = self.state._take_fault(key, "extra", method) or 0
        corrupt = self.state._take_fault(key, "corrupt", method)
        cut_after = self.state._take_fault(key, "cut_after", method)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(length + extra))
        self.end_headers()
        if method == "HEAD":
            return

        flip_at = length // 2 if corrupt else -1
        budget = length if cut_after is None else min(cut_after, length)
        sent = 0
        with open(path, "rb") as f:
            f.seek(first)
            while sent < budget:
                block = bytearray(f.read(min(_BLOCK, budget - sent)))
                if sent <= flip_at < sent + len(block):
                    block[flip_at - sent] ^= 0xFF
                self.wfile.write(block)
                sent += len(block)
        if cut_after is not None and cut_after < length:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        if extra:
            self.wfile.write(b"\0" * extra)

    def _error(self, method, status, code, message, headers=None) -> None:
        body = b"" if method == "HEAD" else _error_xml(code, message, self.path)
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _error_xml(code: str, message: str, resource: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{escape(message)}</Message>"
        f"<Resource>{escape(resource)}</Resource><RequestId>test</RequestId></Error>"
    ).encode()
