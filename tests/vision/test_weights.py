"""fetch_weights against a Hugging Face-style file server started by the test on 127.0.0.1."""

import hashlib
import http.server
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from encscale.vision.registry import build_model

SPEC = {
    "timm": "convnext_atto.d2_in1k",
    "kwargs": {"dims": [8, 16, 24, 32], "depths": [1, 1, 1, 1], "ls_init_value": 1.0},
    "seed": 2,
    "input_size": 32,
}
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def serve(files: dict[str, bytes], etags: dict[str, str]):
    """A thread serving HEAD/GET of /<repo>/resolve/<revision>/<file> like the hub."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def _lookup(self):
            parts = self.path.lstrip("/").split("/")
            key = "/".join(parts[:2] + parts[4:])  # drop "resolve/<revision>"
            return key, files.get(key)

        def do_HEAD(self):
            key, body = self._lookup()
            if body is None:
                self.send_response(404)
                self.send_header("X-Error-Code", "EntryNotFound")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("X-Repo-Commit", COMMIT)
            self.send_header("ETag", f'"{etags[key]}"')
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()

        def do_GET(self):
            key, body = self._lookup()
            self.do_HEAD()
            if body is not None:
                self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def fetch_from_server(tmp_path, body: bytes, etag: str):
    """Serve ``body`` as the model's hub file with ``etag``, fetch it: (process, output path)."""
    key = "timm/convnext_atto.d2_in1k/model.safetensors"
    server = serve({key: body}, {key: etag})
    out = tmp_path / "weights" / "atto.safetensors"
    out.parent.mkdir()
    try:
        return run_fetch(tmp_path, server.server_port, out), out
    finally:
        server.shutdown()


def run_fetch(tmp_path, port: int, out: Path):
    code = (
        "import json, sys; from encscale.vision.weights import fetch_weights; "
        "print(json.dumps(fetch_weights(json.loads(sys.argv[1]), sys.argv[2])))"
    )
    env = dict(
        os.environ,
        HF_ENDPOINT=f"http://127.0.0.1:{port}",
        HF_HOME=str(tmp_path / "hf"),
        HF_HUB_OFFLINE="0",
        HF_HUB_DISABLE_XET="1",
        HF_HUB_DISABLE_TELEMETRY="1",
    )
    return subprocess.run(
        [sys.executable, "-c", code, json.dumps(SPEC), str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


@pytest.fixture
def weights_bytes(tmp_path) -> bytes:
    from safetensors.torch import save_file

    path = tmp_path / "source.safetensors"
    save_file(build_model(SPEC).state_dict(), str(path))
    return path.read_bytes()


def test_fetch_verifies_records_and_loads(tmp_path, weights_bytes):
    digest = hashlib.sha256(weights_bytes).hexdigest()
    proc, out = fetch_from_server(tmp_path, weights_bytes, digest)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads(out.with_name("atto.safetensors.json").read_text())
    assert record["sha256"] == digest and record["revision"] == COMMIT
    assert record["repository"] == "timm/convnext_atto.d2_in1k"
    assert record["file"] == "model.safetensors" and record["size"] == len(weights_bytes)
    assert out.read_bytes() == weights_bytes
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name, f"{out.name}.json"]
    loaded = build_model(dict(SPEC, weights="file", weights_file=str(out), seed=7))
    x = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        assert torch.equal(loaded(x), build_model(SPEC)(x))


def test_fetch_refuses_a_corrupted_download(tmp_path, weights_bytes):
    proc, out = fetch_from_server(tmp_path, weights_bytes, "0" * 64)
    assert proc.returncode != 0
    assert "SHA-256" in proc.stderr and "differs from the hub's" in proc.stderr
    assert list(out.parent.iterdir()) == []
