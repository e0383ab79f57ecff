"""Model entries are checked when the workflow is planned: a misspelt timm name, an unknown
tag, bad kwargs, layers that do not exist and pool sizes no map can hold stop the plan with
the config key and the closest names, from a child Python whose verdict is cached."""

import copy
import subprocess

import pytest

from conftest import run_snakemake
from encscale.vision import model_check
from encscale.vision.model_check import model_problems, timm_entry_check

ATTO = {
    "timm": "convnext_atto",
    "kwargs": {"dims": [8, 16, 24, 32], "depths": [1, 1, 1, 1]},
    "input_size": 64,
}


def timm_entry_problem(spec, pool_sizes):
    return timm_entry_check(spec, pool_sizes)[0]


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        ({"timm": "convnext_atoo"}, "'convnext_atoo' is not a model of timm"),
        ({"timm": "convnext_atoo"}, "closest: convnext_atto"),
        ({"timm": "convnext_atto.d2_in1kk"}, "has no pretrained tag 'd2_in1kk'; closest: d2_in1k"),
        ({"kwargs": {"dimz": [8]}}, "cannot be built with kwargs"),
        ({"layers": [4]}, "layers [4] out of range for a model with 4 blocks"),
        ({"layers": ["stages.*.block.*"]}, "no submodule named ['stages.*.block.*']"),
        ({"layers": ["stages.*.block.*"]}, "closest: stages.*.blocks.*"),
    ],
)
def test_a_wrong_entry_is_named_with_the_closest_names(edit, expected):
    problem = timm_entry_problem({**ATTO, **edit}, [1, 2])
    assert problem is not None and expected in problem, problem


def test_pool_sizes_must_fit_a_chosen_map():
    # input 64 px: the stem's map is 16 × 16, the last stage's 2 × 2
    assert timm_entry_problem(ATTO, [1, 2, 16]) is None
    assert timm_entry_problem(ATTO, "all") is None  # k 1…16, each capped at its map
    problem = timm_entry_problem({**ATTO, "layers": [-1]}, [1, 2, 4])
    assert "pool sizes [4] exceed every chosen layer's map (the largest is 2×2" in problem
    named = {**ATTO, "layers": ["stem", "stages.*.blocks.*"]}
    assert timm_entry_problem(named, [1, 2, 4, 8, 16]) is None


def test_the_verdict_is_cached_and_plugins_are_left_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("ENCSCALE_CACHE", str(tmp_path))
    models = {"bad": {**ATTO, "timm": "convnext_atoo"}, "plugin": {"factory": "x:y"}}
    first = model_problems(models, {"bad": [1], "plugin": [1]})
    assert list(first) == ["bad"] and "closest: convnext_atto" in first["bad"]
    assert len(list((tmp_path / "model-checks").glob("*.json"))) == 1

    def no_child(*args, **kwargs):
        raise AssertionError("the cached verdict must be used")

    monkeypatch.setattr(model_check.subprocess, "run", no_child)
    assert model_problems(models, {"bad": [1], "plugin": [1]}) == first
    monkeypatch.setattr(model_check.subprocess, "run", subprocess.run)
    assert model_problems({"plugin": {"factory": "x:y"}}, {"plugin": [1]}) == {}


def test_planning_stops_on_a_misspelt_model_before_any_job(tmp_path, demo_config):
    config = copy.deepcopy(demo_config)
    config["models"]["convnext_l"]["timm"] = "convnext_atoo"
    proc = run_snakemake(tmp_path, config, "-n", check=False)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "config key 'models.convnext_l': timm: 'convnext_atoo' is not a model" in text
    assert "closest: convnext_atto" in text
