"""The study's cost before it runs: jobs, disk and reads from shapes alone, checked by hand
on the demo config; the real studies' printouts without the network."""

from __future__ import annotations

import socket
import time

import numpy as np
import pytest

from conftest import REPO
from encscale import cost

DEMO = REPO / "config" / "config.yaml"


@pytest.fixture(scope="module")
def demo():
    return cost.load_config(DEMO)


@pytest.fixture(scope="module")
def frame(demo):
    return cost.study_cost(demo, "cpu")


@pytest.fixture
def offline(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("no network in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)


def row(frame, rule, design, model):
    sel = frame[(frame["rule"] == rule) & (frame["design"] == design) & (frame["model"] == model)]
    assert len(sel) == 1
    return sel.iloc[0]


def demo_maps(spec: dict) -> list[tuple[int, int, int]]:
    """A ConvNeXt's stage maps: dims channels at strides 4, 8, 16, 32 of input_size."""
    side = spec["input_size"] // 4
    return [(c, side >> i, side >> i) for i, c in enumerate(spec["kwargs"]["dims"])]


def test_jobs_per_rule(demo, frame):
    n_subjects, n_draws = len(demo["subjects"]), demo["encoding"]["n_draws"]
    jobs = frame.groupby(["rule", "design"])["jobs"].sum()
    assert jobs["extract_features", "new"] == jobs["extract_features", "old"] == 3
    assert jobs["fit_subject_model", "new"] == n_subjects * 3
    # the workflow's fit_combinations(): the data model at 4 sizes, the other two models at
    # the parameter-scaling and (as ensemble members) the final size
    assert jobs["fit_encoding", "old"] == n_subjects * n_draws * (4 + 2 * 2)
    assert row(frame, "fit_encoding", "old", "convnext_l")["jobs"] == n_subjects * n_draws * 4
    pairs, ensemble_sizes = cost.old_fit_pairs(demo)
    assert ("convnext_s", 350) in pairs and ("convnext_s", 100) not in pairs
    assert ensemble_sizes == [350, 700]


def test_extraction_disk_is_the_maps(demo, frame):
    d = demo["demo"]
    n = d["n_shared"] + len(demo["subjects"]) * d["n_unique"]  # stimuli.h5: images seen
    assert frame.attrs["n_stimuli"] == n == 1520
    for name, spec in demo["models"].items():
        values = sum(c * h * w for c, h, w in demo_maps(spec))
        assert row(frame, "extract_features", "new", name)["disk_bytes"] == n * values * 4
    assert row(frame, "extract_features", "new", "convnext_s")["disk_bytes"] == 1520 * 7680 * 4


def test_old_extraction_disk_is_every_pooled_set(demo, frame):
    n, ks = frame.attrs["n_stimuli"], demo["encoding"]["pool_sizes"]
    for name, spec in demo["models"].items():
        values = sum(c * sum(k * k for k in {min(k, s) for k in ks}) for c, s, _ in demo_maps(spec))
        assert row(frame, "extract_features", "old", name)["disk_bytes"] == n * values * 4
    # convnext_s, k = 1, 2, 4, 8 on sides 16, 8, 4, 2: 85, 85, 21 and 5 values per channel
    expected = 16 * 85 + 32 * 85 + 64 * 21 + 128 * 5
    assert row(frame, "extract_features", "old", "convnext_s")["disk_bytes"] == n * expected * 4


def test_the_new_design_reads_less(frame):
    subject_model = (frame["rule"] == "fit_subject_model") & (frame["design"] == "new")
    new = frame[subject_model].set_index("model")["read_bytes"]
    old = frame[frame["rule"] == "fit_encoding"].set_index("model")["read_bytes"]
    assert (new < old).all() and new.sum() < old.sum()


def test_new_reads_are_each_map_once_for_the_rows(demo, frame):
    d = demo["demo"]
    rows = d["n_unique"] + d["n_shared"]  # the 700-sample draw takes the whole pool
    spec = demo["models"]["convnext_m"]
    values = sum(c * h * w for c, h, w in demo_maps(spec))
    got = row(frame, "fit_subject_model", "new", "convnext_m")["read_bytes"]
    assert got == len(demo["subjects"]) * rows * values * 4


def test_memory_per_job(frame):
    old = frame[frame["rule"] == "fit_encoding"]
    assert (old["declared_bytes"] == 4000 * 2**20).all()
    new = frame[frame["rule"] == "fit_subject_model"]  # declared for every row of a subject
    assert (new["declared_bytes"] >= new["peak_bytes"]).all() and (new["peak_bytes"] > 0).all()


def test_another_k_list(demo, frame):
    other = cost.study_cost(demo, "h100", pool_sizes=[1, 2])
    for name in demo["models"]:
        assert (
            row(other, "extract_features", "new", name)["disk_bytes"]
            == row(frame, "extract_features", "new", name)["disk_bytes"]
        )
        assert (
            row(other, "fit_encoding", "old", name)["flop"]
            < row(frame, "fit_encoding", "old", name)["flop"]
        )
    assert (other["device_seconds"] < frame["device_seconds"]).all()


def test_expected_rows():
    assert cost.expected_rows(700, [100, 700]) == 700
    assert cost.expected_rows(1000, [500, 500]) == 750
    assert cost.expected_rows(1000, [100, 500], mode="prefix") == 500


def test_meta_models_have_the_study_shapes(offline):
    eva_l = cost.model_shape({"timm": "eva02_large_patch14_clip_224.merged2b"})
    assert eva_l.maps == ((1024, 16, 16),) * 24 and 290e6 < eva_l.params < 320e6
    tokens = 16 * 16 + 1  # 2·params·tokens, within the attention's few percent
    assert 1.0 < eva_l.forward_flops / (2 * eva_l.params * tokens) < 1.1
    convnext = cost.model_shape({"timm": "convnext_xxlarge.clip_laion2b_soup_ft_in1k"})
    assert convnext.maps == ((384, 64, 64), (768, 32, 32), (1536, 16, 16), (3072, 8, 8))
    eva_e = cost.model_shape(
        {"timm": "eva02_enormous_patch14_clip_224.laion2b_plus", "layers": [-1]}
    )
    assert eva_e.maps == ((1792, 16, 16),) and eva_e.params > 4e9
    assert cost.model_shape({"factory": "some_plugin:build"}) is None


@pytest.mark.parametrize("name", ["nsd.yaml", "algonauts2023.yaml"])
def test_printout_of_the_studies_needs_no_network(name, offline, capsys):
    started = time.perf_counter()
    assert cost.main([str(REPO / "config" / name), "--device", "h100", "--pool-sizes", "1,2"]) == 0
    out = capsys.readouterr().out
    assert time.perf_counter() - started < 120  # model shapes on the meta device
    for text in ("fit_subject_model", "fit_encoding", "unknown (plugin)", "scratch the study"):
        assert text in out
    assert out.count("device-hours") == 6  # three designs × (configured k, k = 1, 2)
    assert out.count("scratch the study writes, features.store none") == 2
    frame = cost.study_cost(cost.load_config(REPO / "config" / name), "h100")
    plugin = frame[frame["model"] == "one_peace"]
    assert plugin["disk_bytes"].isna().all() and (plugin["note"] == "unknown (plugin)").all()
    known = frame[frame["model"] != "one_peace"]
    assert np.isfinite(known[["disk_bytes", "read_bytes", "flop", "device_seconds"]]).all().all()
    fit_jobs = frame[frame["rule"] == "fit_subject_model"].groupby("design")["jobs"].sum()
    assert fit_jobs["new"] == fit_jobs["none"] == 8 * 6


def test_store_none_writes_no_features_and_runs_the_model_per_layer_group(demo, frame):
    from encscale.encoding import plan

    d = demo["demo"]
    rows = d["n_unique"] + d["n_shared"]  # every image of a subject: the 700-sample draw
    n_subjects = len(demo["subjects"])
    side = d["image_size"]
    for name, spec in demo["models"].items():
        maps = demo_maps(spec)
        new = row(frame, "fit_subject_model", "new", name)
        none = row(frame, "fit_subject_model", "none", name)
        assert none["disk_bytes"] == new["disk_bytes"]  # the fit files alone
        # the demo's maps of 820 images (at most 1.6 MB a layer) make one group of 4 GiB
        assert plan.model_maps_passes(rows, maps, 4, 4 * 2**30) == 1
        assert none["read_bytes"] == n_subjects * rows * side * side * 3  # images, once
        held = plan.model_maps_bytes(rows, maps, 0, 4, 4 * 2**30, demo["features"]["batch_size"])
        assert none["peak_bytes"] > new["peak_bytes"] + held  # the weights on top
        assert none["flop"] > new["flop"]  # the forward passes
    need = cost.scratch_need(demo, store="none")
    assert (
        need["features"] == 0
        and need["total"]
        == cost.scratch_need(demo)["total"] - (cost.scratch_need(demo)["features"])
    )


def test_the_first_study_without_feature_files_writes_under_50_GB():
    """config/nsd.yaml, store none: the fits (test predictions only where the ensemble reads
    them, set scores in float16), the responses and a view of NSD's images."""
    config = cost.load_config(REPO / "config" / "nsd.yaml")
    need = cost.scratch_need(config, store="none")
    assert need["features"] == need["stimuli"] == 0 and need["total"] < 50e9
    assert need["raw"] > 300e9  # NSD's own files, read, not written
    assert need["resume"] < 3e9
    config["encoding"]["predictions"] = "all"
    config["prepare"]["images"] = "copy"
    copied = cost.scratch_need(config, store="none")
    assert copied["stimuli"] > 35e9  # the ~70,000 images the subjects saw, 425 px
    assert copied["fits"] - need["fits"] > 25e9 and copied["total"] > 2 * 50e9 - 1e9


def test_fit_file_bytes_is_the_size_of_a_written_fit(tmp_path):
    from encscale.contracts import Fit, write_fit

    rng = np.random.default_rng(0)
    n_sets, voxels, size, n_test = 40, 3000, 200, 150
    for predictions in (True, False):
        fit = Fit(
            best_set=rng.integers(0, n_sets, voxels).astype(np.int16),
            feature_sets=np.array([f"block{i:02d}/k1" for i in range(n_sets)]),
            set_depth=np.linspace(0, 1, n_sets).astype(np.float32),
            best_alpha=np.ones(voxels, np.float32),
            cv_score=np.zeros(voxels, np.float32),
            set_scores=np.zeros((n_sets, voxels), np.float16),
            edge_gain=np.zeros(voxels, np.float32),
            train_rows=np.arange(size),
            test_pred=rng.normal(size=(n_test, voxels)).astype(np.float32) if predictions else None,
            test_r=np.zeros(voxels, np.float32),
        )
        path = tmp_path / f"fit_{predictions}.h5"
        write_fit(path, fit)
        expected = cost.fit_file_bytes(n_sets, voxels, size, n_test, 0, predictions)
        assert expected <= path.stat().st_size < expected + 64_000  # HDF5's own overhead
