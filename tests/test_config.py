"""The config is validated before anything runs; errors name the offending key."""

import copy
from pathlib import Path

import pytest
import yaml

from conftest import REPO, run_snakemake


def job_counts(text: str) -> dict[str, int]:
    """The 'Job stats' table of a Snakemake dry run as {rule: count}."""
    counts = {}
    for line in text.split("Job stats:")[1].splitlines()[3:]:
        row = line.split()
        if not row:
            break
        if len(row) == 2 and row[1].isdigit():
            counts[row[0]] = int(row[1])
    return counts


def dry_run_error(tmp_path, config) -> str:
    proc = run_snakemake(tmp_path, config, "-n", check=False)
    assert proc.returncode != 0, "an invalid config must stop Snakemake"
    return proc.stdout + proc.stderr


def test_demo_config_dry_run_plans_the_study(tmp_path, demo_config):
    proc = run_snakemake(tmp_path, demo_config, "-n", "--quiet", "rules")
    counts = job_counts(proc.stdout + proc.stderr)
    n_fits = 2 * 2 * (4 + 2)  # subjects × draws × (data-scaling sizes + 2 other models)
    assert counts["fit_encoding"] == counts["score_fit"] == n_fits
    assert counts["extract_features"] == 3 and counts["prepare_subject"] == 2
    assert counts["simulate_demo"] == counts["figure_roi_scores"] == 1


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (lambda c: c["encoding"].update(n_fold=5), "n_fold"),
        (lambda c: c.update(colour="red"), "colour"),
        (lambda c: c["models"]["convnext_s"].update(pretrained=True), "pretrained"),
        (lambda c: c["encoding"].update(n_draws="two"), "n_draws"),
        (lambda c: c["features"].update(pool_sizes=[1, "k2"]), "pool_sizes"),
        (lambda c: c["encoding"].update(sizes=[100, 5000]), "encoding.sizes"),
        (lambda c: c["scaling"].update(data_model="vit_huge"), "scaling.data_model"),
        (lambda c: c["final"].update(atlases=["streams", "hcp"]), "final.atlases"),
    ],
)
def test_bad_config_stops_with_the_key_named(tmp_path, demo_config, edit, key):
    config = copy.deepcopy(demo_config)
    edit(config)
    out = dry_run_error(tmp_path, config)
    assert key in out, out[-3000:]
    assert not (tmp_path / "results").exists()


def test_snakemake_lint_is_clean(tmp_path, demo_config):
    proc = run_snakemake(tmp_path, demo_config, "--lint", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "Lints for" not in out, out[-3000:]


def placeholder_nsd(root, subjects, beta_version, roi_files) -> None:
    """Empty files wherever the study reads NSD (enough for Snakemake to plan it)."""
    from encscale import nsd

    paths = [nsd.expdesign_path(root), nsd.stimuli_path(root)]
    for subject in subjects:
        paths += [nsd.betas_path(root, subject, s, beta_version) for s in range(1, 41)]
        paths += [nsd.ncsnr_path(root, subject, beta_version), nsd.brainmask_path(root, subject)]
        paths += [nsd.roi_path(root, subject, name) for name in roi_files]
        paths += [nsd.ctab_path(root, subject, name) for name in roi_files]
    for path in paths:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).touch()


def test_nsd_config_plans_every_model_on_a_gpu(tmp_path):
    config = yaml.safe_load((REPO / "config" / "nsd.yaml").read_text())
    assert len(config["models"]) == 6
    prep = config["prepare"]
    placeholder_nsd(
        tmp_path / config["nsd"]["root"],
        config["subjects"],
        prep["beta_version"],
        [prep["mask_roi"], *prep["atlases"]],
    )
    # the demo config where the Snakefile looks for it: a study's config must replace it
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text((REPO / "config" / "config.yaml").read_text())
    # without the local profile, whose `resources: gpu=0` caps what a job may request here
    proc = run_snakemake(tmp_path, config, "-n", "--workflow-profile", "none")
    text = proc.stdout + proc.stderr
    counts = job_counts(text)
    assert counts["extract_features"] == 6 and counts["prepare_subject"] == 4
    assert "simulate_demo" not in counts
    jobs = [block for block in text.split("rule ")[1:] if block.startswith("extract_features:")]
    planned = {}
    for block in jobs:
        model = block.split("wildcards: model=")[1].split()[0].rstrip(",")
        planned[model] = block.split("resources: ")[1].splitlines()[0]
    assert sorted(planned) == sorted(config["models"])
    for model, resources in planned.items():
        assert "gpu=1" in resources, (model, resources)
        assert f"mem_mb={config['models'][model]['resources']['mem_mb']}" in resources


def test_weights_file_is_an_input_fetched_when_missing(tmp_path, demo_config):
    config = copy.deepcopy(demo_config)
    config["models"]["convnext_l"].update(
        timm="convnext_atto.d2_in1k",
        weights="file",
        weights_file="resources/weights/convnext_l.safetensors",
    )
    proc = run_snakemake(tmp_path, config, "-n", "--quiet", "rules")
    counts = job_counts(proc.stdout + proc.stderr)
    assert counts["fetch_weights"] == 1 and counts["extract_features"] == 3
    del config["models"]["convnext_l"]["weights_file"]
    assert "weights_file" in dry_run_error(tmp_path / "bad", config)
