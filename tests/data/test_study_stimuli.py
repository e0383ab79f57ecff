"""A study's stimuli.h5 from its NSD copy: from the local stimuli file, or read remotely from
the bucket's object (only the rows of the images the subjects saw)."""

from __future__ import annotations

import h5py
import numpy as np
from s3server import serve_bucket

from conftest import TINY_SIM_PARAMS
from encscale.data import nsd
from encscale.data.stimuli import prepare_study_stimuli
from encscale.simulate.nsd import simulate_nsd

TINY = {**TINY_SIM_PARAMS, "n_subjects": 2}


def read_stimuli(path) -> tuple[np.ndarray, np.ndarray]:
    with h5py.File(path, "r") as h5:
        return h5["ids"][()], h5["images"][()]


def test_local_and_remote_stimuli_are_the_subject_images(tmp_path, monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    raw = tmp_path / "nsd"
    simulate_nsd(raw, TINY)
    design_path = nsd.expdesign_path(raw)
    seen = np.unique(nsd.subject_image_ids(nsd.read_expdesign(design_path), "subj02"))
    with h5py.File(nsd.stimuli_path(raw), "r") as h5:
        brick = h5["imgBrick"][()]
    assert seen.size < len(brick)  # subj02 saw some of the images only

    local = tmp_path / "local" / "stimuli.h5"
    prepare_study_stimuli(design_path, ["subj02"], local)
    ids, images = read_stimuli(local)
    np.testing.assert_array_equal(ids, seen)
    np.testing.assert_array_equal(images, brick[seen])

    key = nsd.stimuli_path("")
    remote = tmp_path / "remote" / "stimuli.h5"
    with serve_bucket(raw, "nsd") as server:
        source = {"bucket": "nsd", "endpoint_url": server.endpoint_url}
        prepare_study_stimuli(design_path, ["subj02"], remote, remote=source, key=key)
        reads = [r for method, k, r in server.requests if method == "GET" and k == key]
    ids, images = read_stimuli(remote)
    np.testing.assert_array_equal(ids, seen)
    np.testing.assert_array_equal(images, brick[seen])
    assert reads and all(r is not None and r.startswith("bytes=") for r in reads)  # ranged
