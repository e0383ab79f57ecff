"""Every shipped config plans offline and without side effects: a dry run in an empty folder
with the network blocked writes nothing but Snakemake's own metadata, and a study whose data
must be on disk first says which config key to set."""

from pathlib import Path

import pytest
import yaml

from conftest import NO_NETWORK, REPO, job_counts, run_snakemake

# git's clone would reach the network through these too
OFFLINE = dict(NO_NETWORK, GIT_TERMINAL_PROMPT="0", http_proxy=NO_NETWORK["HTTP_PROXY"])
OFFLINE["https_proxy"] = NO_NETWORK["HTTPS_PROXY"]


def written(workdir: Path) -> list[str]:
    """Files and folders under ``workdir`` except Snakemake's metadata and the config."""
    return sorted(
        str(p.relative_to(workdir))
        for p in workdir.rglob("*")
        if p.relative_to(workdir).parts[0] != ".snakemake" and p.name != "study.yaml"
    )


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "config").glob("*.yaml")))
def test_every_shipped_config_plans_offline_without_side_effects(tmp_path, name):
    config = yaml.safe_load((REPO / "config" / name).read_text())
    proc = run_snakemake(tmp_path, config, "-n", check=False, env=OFFLINE)
    text = proc.stdout + proc.stderr
    assert written(tmp_path) == []
    if name == "algonauts2023.yaml":  # a download only the user can make: the key to set
        assert proc.returncode != 0
        assert "config key 'algonauts.root'" in text and "subj01" in text
        return
    assert proc.returncode == 0, text[-3000:]
    counts = job_counts(text)
    if name == "cneuromod.yaml":  # the DataLad tree first, in a job; nothing cloned here
        assert counts == {"install_cneuromod": 1, "all": 1, "total": 2}
        assert "run the same command again to plan the study" in text
    else:
        assert counts["fit_encoding" if "movies" in name else "extract_features"] > 0


def test_a_cneuromod_root_without_movies_or_source_names_the_key(tmp_path):
    config = yaml.safe_load((REPO / "config" / "cneuromod.yaml").read_text())
    config["cneuromod"]["source"] = None
    proc = run_snakemake(tmp_path, config, "-n", check=False, env=OFFLINE)
    assert proc.returncode != 0 and "config key 'cneuromod.root'" in proc.stdout + proc.stderr
    assert written(tmp_path) == []
