"""The config is validated before anything runs; errors name the offending key."""

import copy

import pytest

from conftest import run_snakemake


def job_counts(text: str) -> dict[str, int]:
    """The 'Job stats' table of a Snakemake dry run as {rule: count}."""
    table = text.split("Job stats:")[1].split("Reasons:")[0]
    rows = [line.split() for line in table.splitlines()[3:] if line.strip()]
    return {row[0]: int(row[1]) for row in rows if len(row) == 2}


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
