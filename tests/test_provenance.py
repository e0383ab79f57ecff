"""Provenance attributes of HDF5 outputs and the report's software and runtime tables."""

import json
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import encscale
from encscale import provenance
from encscale.io import create_h5
from encscale.provenance import runtime_table, software_table

JOB = {
    "rule": "fit_encoding",
    "wildcards": {"subject": "subj01", "model": "m", "size": "100", "seed": "0"},
    "config": {"settings": {"n_folds": 5, "alphas": {"log10_min": -2, "num": 3}}},
}


def test_create_h5_records_job_and_versions(tmp_path):
    path = tmp_path / "fit.h5"
    with create_h5(path, JOB) as h5:
        h5["x"] = np.arange(3)
    prov = provenance.read_provenance(path)
    assert prov["version"] == encscale.__version__
    assert prov["rule"] == "fit_encoding"
    assert prov["wildcards"] == JOB["wildcards"]
    assert prov["config"] == JOB["config"]
    assert prov["software"]["numpy"] == version("numpy")
    assert prov["software"]["torch"] == version("torch")  # imported by this module
    assert prov["software"]["python"] == sys.version.split()[0]
    with h5py.File(path) as h5:
        assert json.loads(h5.attrs["encscale_config"]) == JOB["config"]
        assert h5["x"][()].tolist() == [0, 1, 2]


def test_create_h5_without_provenance_writes_no_attributes(tmp_path):
    path = tmp_path / "plain.h5"
    with create_h5(path) as h5:
        h5["x"] = 1
    with h5py.File(path) as h5:
        assert dict(h5.attrs) == {}
    with pytest.raises(KeyError, match="plain.h5: no provenance"):
        provenance.read_provenance(path)


def test_software_versions_lists_cuda_and_gpu_when_torch_has_one(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    versions = provenance.software_versions()
    assert "cuda" not in versions and "gpu" not in versions
    assert versions["torch"] == version("torch")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "NVIDIA H100 80GB HBM3")
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    versions = provenance.software_versions()
    assert versions["cuda"] == "12.8" and versions["gpu"] == "NVIDIA H100 80GB HBM3"


def test_job_provenance_reads_a_snakemake_job():
    class Namedlist(dict):
        pass

    class Job:
        rule = "extract_features"
        wildcards = Namedlist(model="vit")
        params = Namedlist(spec={"timm": "vit_tiny"}, batch_size=8)

    assert provenance.job_provenance(Job()) == {
        "rule": "extract_features",
        "wildcards": {"model": "vit"},
        "config": {"spec": {"timm": "vit_tiny"}, "batch_size": 8},
    }


def test_git_describe_names_the_checkout_commit():
    commit = provenance.git_describe()
    if commit is None:
        pytest.skip("the package does not run from a git checkout")
    src = Path(encscale.__file__).parent
    head = subprocess.run(["git", "-C", src, "rev-parse", "HEAD"], capture_output=True, text=True)
    status = subprocess.run(
        ["git", "-C", src, "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
    )
    assert commit == head.stdout.strip() + ("-dirty" if status.stdout.strip() else "")
    assert len(head.stdout.strip()) == 40


def _stamped(path, rule, software):
    with h5py.File(path, "w") as h5:
        h5.attrs.update(
            encscale_version="0.1.0",
            encscale_rule=rule,
            encscale_wildcards="{}",
            encscale_config="{}",
            encscale_software=json.dumps(software),
        )
    return path


def test_software_table_counts_files_per_rule_package_and_version(tmp_path):
    files = [
        _stamped(tmp_path / "a.h5", "fit_encoding", {"torch": "2.13.0", "cuda": "12.8"}),
        _stamped(tmp_path / "b.h5", "fit_encoding", {"torch": "2.13.0", "cuda": "12.4"}),
        _stamped(tmp_path / "c.h5", "extract_features", {"torch": "2.13.0", "timm": "1.0.31"}),
    ]
    table = software_table(files, {"snakemake": "9.27.1"})
    rows = {(r.rule, r.package, r.version): r.n_files for r in table.itertuples()}
    assert rows == {
        ("workflow", "snakemake", "9.27.1"): 0,
        ("fit_encoding", "torch", "2.13.0"): 2,
        ("fit_encoding", "cuda", "12.8"): 1,  # two environments made the fits: both shown
        ("fit_encoding", "cuda", "12.4"): 1,
        ("fit_encoding", "encscale", "0.1.0"): 2,
        ("extract_features", "torch", "2.13.0"): 1,
        ("extract_features", "timm", "1.0.31"): 1,
        ("extract_features", "encscale", "0.1.0"): 1,
    }


BENCHMARK_HEADER = (
    "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
)


def _benchmark(path, seconds, rss, cpu):
    path.write_text(BENCHMARK_HEADER + f"{seconds}\t0:00:01\t{rss}\t1\t1\t1\t0\t0\t0\t{cpu}\n")
    return path


def test_runtime_table_summarises_benchmarks_per_rule(tmp_path):
    fits = [
        _benchmark(tmp_path / f"f{i}.tsv", s, r, c)
        for i, (s, r, c) in enumerate([(1.0, 100.0, 2.0), (3.0, 300.0, 5.0), (8.0, 200.0, 9.0)])
    ]
    feats = [_benchmark(tmp_path / "x.tsv", 20.5, 900.0, 40.0)]
    table = runtime_table({"extract_features": feats, "fit_encoding": fits}).set_index("rule")
    assert list(table.index) == ["extract_features", "fit_encoding"]
    assert table.loc["fit_encoding"].to_dict() == {
        "jobs": 3,
        "total_s": 12.0,
        "median_s": 3.0,
        "max_s": 8.0,
        "max_rss_mb": 300.0,
        "cpu_time_s": 16.0,
    }
    assert table.loc["extract_features", "total_s"] == 20.5


def test_runtime_table_names_a_file_that_is_not_a_benchmark(tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("seconds\n1\n")
    with pytest.raises(ValueError, match="bad.tsv: not a Snakemake benchmark file"):
        runtime_table({"fit_encoding": [bad]})
    empty = tmp_path / "empty.tsv"
    empty.write_text(BENCHMARK_HEADER)
    with pytest.raises(ValueError, match="empty.tsv: not a Snakemake benchmark file"):
        runtime_table({"fit_encoding": [empty]})
    no_rules = runtime_table({})
    assert no_rules.empty
    assert list(no_rules.columns) == [
        "rule",
        "jobs",
        "total_s",
        "median_s",
        "max_s",
        "max_rss_mb",
        "cpu_time_s",
    ]
