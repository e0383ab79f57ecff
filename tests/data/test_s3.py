"""encscale.data.s3 against a local S3-compatible server (tests/s3server.py)."""

import hashlib
import json
import logging
from pathlib import Path

import h5py
import numpy as np
import pytest
from botocore import UNSIGNED
from s3server import serve_bucket

from encscale.data import s3
from encscale.data.s3 import S3Source, fetch_object, open_remote, read_manifest

BUCKET = "nsd-test"
KiB, MiB = 2**10, 2**20


@pytest.fixture(autouse=True)
def fast_and_local(monkeypatch):
    """No backoff delays; never send the test server's traffic through a proxy."""
    monkeypatch.setattr(s3, "BACKOFF_BASE_S", 0.0)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture
def root(tmp_path) -> Path:
    path = tmp_path / "bucket"
    path.mkdir()
    return path


@pytest.fixture
def serve(root):
    """Start test servers over ``root``: ``serve(**serve_bucket options)``; closed afterwards."""
    servers = []

    def start(**options):
        servers.append(serve_bucket(root, BUCKET, **options))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def put(root: Path, key: str, n_bytes: int, seed: int = 0) -> bytes:
    """Write ``n_bytes`` random bytes as object ``key``; return them."""
    data = np.random.default_rng(seed).integers(0, 256, n_bytes, dtype=np.uint8).tobytes()
    path = root / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


def source_for(server, **options) -> S3Source:
    return S3Source(BUCKET, endpoint_url=server.endpoint_url, **options)


def get_ranges(server, key: str) -> list[str | None]:
    """The Range header of every GET of ``key`` so far."""
    return [r for method, k, r in server.requests if method == "GET" and k == key]


def leftovers(dest: Path) -> list[str]:
    """Names of dest, its part and its record that exist."""
    names = [dest.name, dest.name + ".part", dest.name + ".part.json"]
    return [name for name in names if (dest.parent / name).exists()]


# --- whole downloads ---------------------------------------------------------------------


def test_single_part_etag_download_is_identical(root, serve, tmp_path):
    data = put(root, "nsddata/a.bin", 600_000)
    server = serve()
    dest = tmp_path / "out" / "deep" / "a.bin"  # parent folders do not exist yet

    record = fetch_object(source_for(server), "nsddata/a.bin", dest)

    assert dest.read_bytes() == data
    md5 = hashlib.md5(data).hexdigest()
    assert record == {
        "key": "nsddata/a.bin",
        "url": f"s3://{BUCKET}/nsddata/a.bin",
        "size": len(data),
        "etag": md5,
        "md5": md5,
        "sha256": hashlib.sha256(data).hexdigest(),
        "resumed_from": 0,
    }
    assert leftovers(dest) == ["a.bin"]
    assert get_ranges(server, "nsddata/a.bin") == ["bytes=0-"]


def test_multipart_etag_download_is_identical(root, serve, tmp_path):
    data = put(root, "b.bin", 1_000_000)
    server = serve(multipart_threshold=100 * KiB, part_size=256 * KiB)

    record = fetch_object(source_for(server), "b.bin", tmp_path / "b.bin")

    assert (tmp_path / "b.bin").read_bytes() == data
    assert record["etag"].endswith("-4") and record["md5"] is None
    assert record["sha256"] == hashlib.sha256(data).hexdigest()


def test_multipart_part_size_guessed_when_store_does_not_answer_part_number(
    root, serve, tmp_path, caplog
):
    data = put(root, "c.bin", 6 * MiB + 123)
    server = serve(multipart_threshold=MiB, part_size=5 * MiB, answer_part_number=False)

    with caplog.at_level(logging.INFO, logger="encscale.data.s3"):
        record = fetch_object(source_for(server), "c.bin", tmp_path / "c.bin")

    assert (tmp_path / "c.bin").read_bytes() == data
    assert record["etag"].endswith("-2")
    assert "does not report the part size" in caplog.text


def test_multipart_etag_with_unknown_part_size_is_refused(root, serve, tmp_path):
    put(root, "d.bin", 1_000_000)  # 4 parts of 256 KiB: no usual part size gives 4 parts
    server = serve(multipart_threshold=100 * KiB, part_size=256 * KiB, answer_part_number=False)
    dest = tmp_path / "d.bin"

    with pytest.raises(ValueError, match=rf"s3://{BUCKET}/d\.bin: refused.*cannot be verified"):
        fetch_object(source_for(server), "d.bin", dest)
    assert leftovers(dest) == []


def test_empty_object(root, serve, tmp_path):
    put(root, "empty.bin", 0)
    server = serve()

    record = fetch_object(source_for(server), "empty.bin", tmp_path / "empty.bin")

    assert (tmp_path / "empty.bin").read_bytes() == b""
    assert record["size"] == 0 and record["md5"] == hashlib.md5(b"").hexdigest()


# --- interruptions and resuming ----------------------------------------------------------


def test_cut_connection_is_retried_within_one_call(root, serve, tmp_path, caplog):
    data = put(root, "e.bin", 1_000_000)
    server = serve()
    server.faults["e.bin"] = {"cut_after": 256 * KiB}

    with caplog.at_level(logging.WARNING, logger="encscale.data.s3"):
        record = fetch_object(source_for(server), "e.bin", tmp_path / "e.bin", chunk_size=64 * KiB)

    assert (tmp_path / "e.bin").read_bytes() == data
    assert record["resumed_from"] == 0
    assert get_ranges(server, "e.bin") == ["bytes=0-", f"bytes={256 * KiB}-"]
    assert f"s3://{BUCKET}/e.bin: at byte {256 * KiB} of 1000000" in caplog.text


def test_exhausted_retries_keep_the_part_and_the_next_call_resumes(root, serve, tmp_path, caplog):
    data = put(root, "f.bin", 1_000_000)
    server = serve()
    server.faults["f.bin"] = {"cut_after": 384 * KiB}
    dest = tmp_path / "f.bin"

    with pytest.raises(ConnectionError, match=rf"s3://{BUCKET}/f\.bin.*kept"):
        fetch_object(source_for(server, retries=0), "f.bin", dest, chunk_size=64 * KiB)
    assert leftovers(dest) == ["f.bin.part", "f.bin.part.json"]
    assert (tmp_path / "f.bin.part").stat().st_size == 384 * KiB
    assert json.loads((tmp_path / "f.bin.part.json").read_text())["size"] == len(data)

    with caplog.at_level(logging.INFO, logger="encscale.data.s3"):
        record = fetch_object(source_for(server, retries=0), "f.bin", dest, chunk_size=64 * KiB)

    assert dest.read_bytes() == data
    assert record["resumed_from"] == 384 * KiB
    assert get_ranges(server, "f.bin") == ["bytes=0-", f"bytes={384 * KiB}-"]
    assert f"resuming at {384 * KiB} bytes" in caplog.text
    assert leftovers(dest) == ["f.bin"]


@pytest.mark.parametrize("stale", ["other etag", "no record", "longer than the object"])
def test_stale_part_is_discarded(root, serve, tmp_path, stale):
    data = put(root, "g.bin", 500_000)
    server = serve()
    part, record = tmp_path / "g.bin.part", tmp_path / "g.bin.part.json"
    part.write_bytes(b"\xff" * (600_000 if stale == "longer than the object" else 100_000))
    etag = "0" * 32 if stale == "other etag" else hashlib.md5(data).hexdigest()
    if stale != "no record":
        record.write_text(json.dumps({"etag": etag, "size": len(data)}))

    result = fetch_object(source_for(server), "g.bin", tmp_path / "g.bin")

    assert (tmp_path / "g.bin").read_bytes() == data
    assert result["resumed_from"] == 0
    assert get_ranges(server, "g.bin") == ["bytes=0-"]


def test_object_changed_between_runs_is_fetched_anew(root, serve, tmp_path):
    put(root, "h.bin", 500_000, seed=1)
    server = serve()
    server.faults["h.bin"] = {"cut_after": 200_000}
    dest = tmp_path / "h.bin"
    with pytest.raises(
        ConnectionError, match=r"s3://nsd-test/h\.bin: gave up at byte 200000 of 500000 after 1"
    ):
        fetch_object(source_for(server, retries=0), "h.bin", dest)
    new = put(root, "h.bin", 500_000, seed=2)

    record = fetch_object(source_for(server), "h.bin", dest)

    assert dest.read_bytes() == new
    assert record["resumed_from"] == 0
    assert get_ranges(server, "h.bin")[-1] == "bytes=0-"


def test_object_changed_during_download_is_never_spliced(root, serve, tmp_path, monkeypatch):
    put(root, "i.bin", 500_000, seed=1)
    server = serve()
    server.faults["i.bin"] = {"cut_after": 200_000}
    # the object is replaced while the fetch waits to retry after the cut
    monkeypatch.setattr(s3.time, "sleep", lambda s: put(root, "i.bin", 500_000, seed=2))
    dest = tmp_path / "i.bin"

    with pytest.raises(OSError, match=rf"s3://{BUCKET}/i\.bin: the object changed"):
        fetch_object(source_for(server), "i.bin", dest)
    assert leftovers(dest) == []
    assert get_ranges(server, "i.bin") == ["bytes=0-", "bytes=200000-"]


# --- refusals ----------------------------------------------------------------------------


@pytest.mark.parametrize("multipart", [False, True])
def test_corrupted_object_is_refused(root, serve, tmp_path, multipart, caplog):
    put(root, "j.bin", 700_000)
    server = serve(multipart_threshold=100 * KiB if multipart else None, part_size=256 * KiB)
    server.faults["j.bin"] = {"corrupt": True}
    dest = tmp_path / "j.bin"

    with pytest.raises(ValueError, match=rf"s3://{BUCKET}/j\.bin: refused.*MD5"):
        fetch_object(source_for(server), "j.bin", dest)
    assert leftovers(dest) == []
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and errors[0].startswith(f"s3://{BUCKET}/j.bin: refused")


def test_body_shorter_every_time_fails(root, serve, tmp_path):
    put(root, "k.bin", 500_000)
    server = serve()
    server.faults["k.bin"] = {"cut_after": 50_000, "times": 100}
    dest = tmp_path / "k.bin"

    with pytest.raises(ConnectionError, match=rf"s3://{BUCKET}/k\.bin: gave up.*3 attempts"):
        fetch_object(source_for(server, retries=2), "k.bin", dest, chunk_size=10_000)
    assert not dest.exists()
    assert len(get_ranges(server, "k.bin")) == 3
    assert (tmp_path / "k.bin.part").stat().st_size == 150_000


def test_more_bytes_than_announced_are_refused(root, serve, tmp_path):
    put(root, "l.bin", 300_000)
    server = serve()
    server.faults["l.bin"] = {"extra": 1000}
    dest = tmp_path / "l.bin"

    with pytest.raises(ValueError, match=rf"s3://{BUCKET}/l\.bin: refused.*more than 300000"):
        fetch_object(source_for(server), "l.bin", dest)
    assert leftovers(dest) == []


def test_sha256_from_a_manifest_is_checked(root, serve, tmp_path):
    data = put(root, "m.bin", 300_000)
    server = serve()
    dest = tmp_path / "m.bin"
    wrong = hashlib.sha256(b"something else").hexdigest()

    with pytest.raises(ValueError, match=rf"s3://{BUCKET}/m\.bin: refused.*SHA-256.*{wrong}"):
        fetch_object(source_for(server), "m.bin", dest, sha256=wrong)
    assert leftovers(dest) == []

    right = hashlib.sha256(data).hexdigest()
    assert fetch_object(source_for(server), "m.bin", dest, sha256=right.upper())["sha256"] == right
    assert dest.read_bytes() == data


# --- error answers -----------------------------------------------------------------------


def test_slowdown_is_retried(root, serve, tmp_path, caplog):
    data = put(root, "n.bin", 300_000)
    server = serve()
    server.faults["n.bin"] = {"status": 503, "times": 2}

    with caplog.at_level(logging.WARNING, logger="encscale.data.s3"):
        fetch_object(source_for(server), "n.bin", tmp_path / "n.bin")

    assert (tmp_path / "n.bin").read_bytes() == data
    assert [m for m, k, _ in server.requests if k == "n.bin"] == ["HEAD"] * 3 + ["GET"]
    assert caplog.text.count(f"s3://{BUCKET}/n.bin: HEAD") == 2

    server.requests.clear()
    server.faults["n.bin"] = {"status": 503, "times": 2, "method": "GET"}
    fetch_object(source_for(server), "n.bin", tmp_path / "n2.bin")

    assert (tmp_path / "n2.bin").read_bytes() == data
    assert get_ranges(server, "n.bin") == ["bytes=0-"] * 3
    assert caplog.text.count(f"s3://{BUCKET}/n.bin: at byte 0 of 300000") == 2


def test_server_errors_exhaust_retries(root, serve, tmp_path):
    put(root, "o.bin", 1000)
    server = serve()
    server.faults["o.bin"] = {"status": 500, "times": 100}

    with pytest.raises(ConnectionError, match=rf"s3://{BUCKET}/o\.bin: gave up HEAD"):
        fetch_object(source_for(server, retries=1), "o.bin", tmp_path / "o.bin")
    assert len(server.requests) == 2


def test_access_denied_is_not_retried(root, serve, tmp_path):
    put(root, "p.bin", 1000)
    server = serve()
    server.faults["p.bin"] = {"status": 403}

    with pytest.raises(PermissionError, match=rf"s3://{BUCKET}/p\.bin: access denied"):
        fetch_object(source_for(server), "p.bin", tmp_path / "p.bin")
    assert len(server.requests) == 1


def test_missing_object_or_bucket(root, serve, tmp_path):
    server = serve()

    with pytest.raises(FileNotFoundError, match=rf"s3://{BUCKET}/nsddata/missing\.bin"):
        fetch_object(source_for(server), "nsddata/missing.bin", tmp_path / "x.bin")
    with pytest.raises(FileNotFoundError, match=r"s3://other-bucket/a\.bin"):
        fetch_object(S3Source("other-bucket", server.endpoint_url), "a.bin", tmp_path / "x.bin")
    assert leftovers(tmp_path / "x.bin") == []


def test_progress_is_logged(root, serve, tmp_path, caplog):
    put(root, "q.bin", 1_000_000)
    server = serve()

    with caplog.at_level(logging.INFO, logger="encscale.data.s3"):
        fetch_object(source_for(server), "q.bin", tmp_path / "q.bin", chunk_size=20_000)

    progress = [r.getMessage() for r in caplog.records if r.getMessage().endswith("%)")]
    assert len(progress) == 10
    assert progress[-1].endswith("1.0 MB of 1.0 MB (100%)")
    assert "MB/s" in caplog.records[-1].getMessage()


def test_opaque_etag_is_logged_and_sha256_still_checked(root, serve, tmp_path, caplog):
    data = put(root, "s.bin", 200_000)
    server = serve()
    server.etag = lambda path: "v1-not-a-digest"

    with caplog.at_level(logging.INFO, logger="encscale.data.s3"):
        sha256 = hashlib.sha256(data).hexdigest()
        record = fetch_object(source_for(server), "s.bin", tmp_path / "s.bin", sha256=sha256)

    assert (tmp_path / "s.bin").read_bytes() == data
    assert record["etag"] == "v1-not-a-digest" and record["md5"] is None
    assert "not verifiable by ETag" in caplog.text


@pytest.mark.parametrize(
    ("etag", "head", "kind"),
    [
        ("0123456789abcdef0123456789abcdef", {}, "md5"),
        ("0123456789abcdef0123456789abcdef-12", {}, "multipart"),
        ("0123456789abcdef0123456789abcdef", {"ServerSideEncryption": "aws:kms"}, "opaque"),
        ("v1-some-version-tag", {}, "opaque"),
    ],
)
def test_etag_kinds(etag, head, kind):
    assert s3._etag_kind(etag, head) == kind


# --- remote reads ------------------------------------------------------------------------


def test_open_remote_reads_hdf5_rows(root, serve, tmp_path):
    images = np.random.default_rng(3).integers(0, 256, (20, 16, 16, 3), dtype=np.uint8)
    with h5py.File(root / "stimuli.hdf5", "w") as f:
        f.create_dataset("imgBrick", data=images, chunks=(1, 16, 16, 3))
    server = serve()

    with open_remote(source_for(server), "stimuli.hdf5", buffer_size=4 * KiB) as fileobj:
        with h5py.File(fileobj, "r") as f:
            rows = f["imgBrick"][[3, 7, 8]]

    np.testing.assert_array_equal(rows, images[[3, 7, 8]])
    ranges = get_ranges(server, "stimuli.hdf5")
    assert ranges and all(r is not None and r.startswith("bytes=") for r in ranges)


def test_open_remote_seeks_reads_and_retries(root, serve):
    data = put(root, "r.bin", 100_000)
    server = serve()
    server.faults["r.bin"] = {"cut_after": 1000}

    with open_remote(source_for(server), "r.bin", buffer_size=8 * KiB) as f:
        assert f.seekable() and f.readable()
        assert f.read(5000) == data[:5000]  # cut after 1000 bytes, retried
        assert f.seek(-10, 2) == 99_990 and f.read() == data[-10:]
        f.seek(50_000)
        assert f.read(20_000) == data[50_000:70_000] and f.tell() == 70_000
        f.seek(200_000)
        assert f.read(10) == b""
    assert get_ranges(server, "r.bin")[:2] == ["bytes=0-8191", "bytes=1000-8191"]


def test_open_remote_missing_object(serve):
    server = serve()
    with pytest.raises(FileNotFoundError, match=rf"s3://{BUCKET}/nope\.h5"):
        open_remote(source_for(server), "nope.h5")


# --- manifest and source configuration ---------------------------------------------------


def test_read_manifest(tmp_path):
    a, b = hashlib.sha256(b"a").hexdigest(), hashlib.sha256(b"b").hexdigest()
    path = tmp_path / "manifest.tsv"
    path.write_text(f"key\tsize\tsha256\nnsddata/a.bin\t10\t{a}\n\nb.h5\t0\t{b.upper()}\n")

    assert read_manifest(path) == {"nsddata/a.bin": (10, a), "b.h5": (0, b)}


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ("key\tsize\n", 1, "header"),
        ("key\tsize\tsha256\na\t10\n", 2, "3 tab-separated fields"),
        (f"key\tsize\tsha256\na\t1\t{'0' * 64}\nb\tten\t{'0' * 64}\n", 3, "not a non-negative"),
        ("key\tsize\tsha256\na\t1\tabc\n", 2, "not 64 hex digits"),
        (f"key\tsize\tsha256\na\t1\t{'0' * 64}\na\t1\t{'0' * 64}\n", 3, "listed twice"),
    ],
)
def test_read_manifest_errors_name_file_and_line(tmp_path, text, line, problem):
    path = tmp_path / "manifest.tsv"
    path.write_text(text)
    with pytest.raises(ValueError, match=rf"manifest\.tsv:{line}: .*{problem}"):
        read_manifest(path)


def test_source_from_config():
    source = S3Source.from_config(
        {"bucket": "natural-scenes-dataset", "region": "us-east-2", "retries": 3}
    )
    assert source == S3Source("natural-scenes-dataset", region="us-east-2", retries=3)
    assert source.url("nsddata/x.nii.gz") == "s3://natural-scenes-dataset/nsddata/x.nii.gz"

    with pytest.raises(ValueError, match=r"unknown keys \['profile', 'retry'\]"):
        S3Source.from_config({"bucket": "b", "retry": 3, "profile": "x"})
    with pytest.raises(ValueError, match="'bucket' is required"):
        S3Source.from_config({"region": "us-east-2"})
    with pytest.raises(ValueError, match="credentials"):
        S3Source.from_config({"bucket": "b", "credentials": "mine"})
    with pytest.raises(ValueError, match="retries"):
        S3Source.from_config({"bucket": "b", "retries": -1})


def test_source_clients():
    anonymous = S3Source("b", region="us-east-2").client()
    assert anonymous.meta.config.signature_version is UNSIGNED
    # botocore keeps max_attempts (retries) as total_max_attempts (the first attempt included)
    assert anonymous.meta.config.retries == {"total_max_attempts": 6, "mode": "standard"}
    assert anonymous.meta.region_name == "us-east-2"

    signed = S3Source("b", region="us-east-2", credentials="default", retries=2).client()
    assert signed.meta.config.signature_version is not UNSIGNED
    assert signed.meta.config.retries["total_max_attempts"] == 3

    mirror = S3Source("b", endpoint_url="http://127.0.0.1:9").client(sdk_retries=0)
    assert mirror.meta.endpoint_url == "http://127.0.0.1:9"
    assert mirror.meta.config.s3["addressing_style"] == "path"
    assert mirror.meta.config.retries["total_max_attempts"] == 1
    assert (mirror.meta.config.connect_timeout, mirror.meta.config.read_timeout) == (10, 60)
