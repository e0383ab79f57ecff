"""The config reference and the README's outputs: every schema key is described and has a
default or is required; config/README.md is what the generator writes from the schemas; the
README names every column of the tables the workflow writes, and layered config files merge
as it says."""

import copy
import re
import subprocess

import pytest
import yaml
from snakemake.utils import validate

from conftest import REPO, SNAKEMAKE, load_demo_config
from encscale.config_reference import (
    KNOWN_KEYWORDS,
    SCHEMA_PATHS,
    config_reference,
    main,
    reference_rows,
)
from encscale.encoding.scores import EDGE_COLUMNS, SCORE_COLUMNS
from encscale.scaling.analysis import EXTRAPOLATION_COLUMNS, FIT_COLUMNS
from encscale.video.gpt import LOG_COLUMNS
from encscale.video.runs import RUN_COLUMNS

SCHEMAS = [REPO / path for path in SCHEMA_PATHS]
SCHEMA_FILES = sorted((REPO / "workflow" / "schemas").glob("*.schema.yaml"))
MINIMAL = {
    "config.schema.yaml": {"models": {"m": {"timm": "convnext_atto"}}},
    "movies.schema.yaml": {
        "dataset": "demo_movies",
        "gpt": {
            "grid": {
                "base": {"width": 8, "layers": 1, "heads": 2, "n_samples": 10, "precision": "fp32"}
            }
        },
    },
}


def schema_nodes(node, where="#"):
    """(where, schema) of every schema in a schema document, the root included."""
    yield where, node
    for key in ("properties", "$defs"):
        for name, child in node.get(key, {}).items():
            yield from schema_nodes(child, f"{where}/{key}/{name}")
    for key in ("items", "additionalProperties", "propertyNames", "not", "if", "then"):
        if isinstance(node.get(key), dict):
            yield from schema_nodes(node[key], f"{where}/{key}")
    for key in ("oneOf", "anyOf"):
        for i, child in enumerate(node.get(key, [])):
            yield from schema_nodes(child, f"{where}/{key}/{i}")


def property_names(node):
    """Every key a schema document declares in a ``properties`` (not those of an ``if``)."""
    names = set()
    for where, schema in schema_nodes(node):
        if "/if" not in where:
            names |= set(schema.get("properties", {}))
    return names


@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda p: p.name)
def test_every_key_has_a_description_and_a_default_or_is_required(schema):
    problems = []
    for row in reference_rows(schema):
        if not str(row.schema.get("description", "")).strip():
            problems.append(f"{row.path}: no description")
        if not ("default" in row.schema or "x-default" in row.schema or row.requirement):
            problems.append(f"{row.path}: neither a default (or x-default) nor required")
        if "default" in row.schema and "x-default" in row.schema:
            problems.append(f"{row.path}: a default and an x-default")
    assert not problems, "\n".join(problems)


def test_the_reference_reaches_every_declared_key():
    """Through $refs into common.schema.yaml, a map's entries and oneOf's object forms."""
    declared = set().union(*(property_names(yaml.safe_load(p.read_text())) for p in SCHEMA_FILES))
    reached = {row.path.split(".")[-1] for s in SCHEMAS for row in reference_rows(s)}
    assert declared - reached == set()
    paths = {row.path for row in reference_rows(SCHEMAS[0])}
    for path in (
        "encoding.alphas.log10_min",  # common.schema.yaml, beside the study's own keys
        "encoding.sizes.num",  # the geometric grid's object form
        "models.<name>.layers.stride",
        "models.<name>.resources.runtime",
        "nsd.sessions.<subject>",
    ):
        assert path in paths


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: p.name)
def test_schemas_use_only_known_keywords(path):
    """A comma in a YAML flow mapping's description makes a key of its tail: a typo."""
    unknown = [
        f"{where}: {sorted(set(node) - KNOWN_KEYWORDS)}"
        for where, node in schema_nodes(yaml.safe_load(path.read_text()))
        if set(node) - KNOWN_KEYWORDS
    ]
    assert not unknown, "\n".join(unknown)


@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda p: p.name)
def test_defaults_shown_are_what_validation_fills_in(schema):
    """A default is filled in; an x-default (the workflow computes it) is not."""
    config = copy.deepcopy(MINIMAL[schema.name])
    validate(config, str(schema), set_default=True)
    checked = 0
    for row in reference_rows(schema):
        *parents, key = row.path.split(".")
        node = config
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if "<" in row.path or not isinstance(node, dict):
            continue  # a map's entries, or below a list, null or absent value
        if "x-default" in row.schema:
            assert key not in node, row.path
        elif "default" in row.schema:
            expected = row.schema["default"]
            if isinstance(expected, dict):  # filled in, and its keys' own defaults with it
                assert expected.items() <= node[key].items(), row.path
            else:
                assert node[key] == expected, row.path
            checked += 1
    assert checked > 40


def test_config_readme_is_the_generators_output():
    expected = config_reference(SCHEMAS)
    actual = (REPO / "config" / "README.md").read_text(encoding="utf-8")
    assert actual == expected, (
        "config/README.md is out of date with workflow/schemas/: run `make config-reference`"
    )


def test_reference_rows_give_each_keys_type_default_and_limits():
    images, movies = config_reference(SCHEMAS).split("\n## Movie study")
    for row in (
        "| `encoding.sizes` | list of integer or object | `[100, 200, 350, 700]` |",
        "| `encoding.sizes.min` | integer | **required in the object form** | ≥ 10 |",
        "| `encoding.alphas.log10_max` | number | `5` |",
        "| `encoding.device` | string | `cpu` | matches `^(cpu\\|cuda(:[0-9]+)?)$` |",
        "| `models.<name>` | object | **required (one or more)** |",
        "| `models.<name>.timm` | string | **required unless `factory` is given** |",
        "| `models.<name>.layers` | string or list of (integer or string) or object | "
        "`all` (required with `factory`) |",
        "| `models.<name>.weights_file` | string | **required when `weights` is `file`** |",
        "| `models.<name>.resources.mem_mb` | integer | `4000` | ≥ 100 |",
        "| `nsd.sessions.<subject>` | integer | every session it completed | ≥ 1 |",
        "| `scaling.data_model` | string | the last model of models |",
        "| `algonauts.holdout` | number | `0.1` | > 0; < 1 |",
        "| `features.compression` | null or string | `null` | `null`, `gzip`, `lzf` |",
    ):
        assert row in images, row
    assert "`demo.hidden_model.timm`" not in images  # listed once, at models.<name>
    assert "its keys are those of `models.<name>`" in images
    for row in (
        "| `dataset` | string | **required** | `demo_movies`, `cneuromod` |",
        "| `gpt.grid.base.precision` | string | **required** | `fp32`, `tf32`, `bf16`, `fp16` |",
        "| `gpt.grid.width` | list of integer | the base's alone | each: ≥ 1; no repeats |",
        "| `gpt.resources.runtime` | integer | `60` | ≥ 1 |",
        "| `encoding.n_folds` | integer | `5` | ≥ 2 |",
    ):
        assert row in movies, row
    assert "`encoding.sizes`" not in movies


def test_the_command_writes_the_file(tmp_path, capsys):
    main([str(p) for p in SCHEMAS] + ["-o", str(tmp_path / "README.md")])
    assert (tmp_path / "README.md").read_text(encoding="utf-8") == config_reference(SCHEMAS)
    main([str(SCHEMAS[1]), "-o", "-"])
    assert capsys.readouterr().out.startswith("# Config reference")


def readme_section(title: str) -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    start = text.index(f"\n### {title}\n")
    ends = [i for i in (text.find("\n### ", start + 1), text.find("\n## ", start + 1)) if i > 0]
    return text[start : min(ends)]


@pytest.mark.parametrize(
    ("table", "columns"),
    [
        ("scores/scores.tsv", SCORE_COLUMNS),
        ("scores/penalty_edges.tsv", EDGE_COLUMNS),
        ("scaling/data_scaling.tsv", FIT_COLUMNS),
        ("scaling/extrapolation.tsv", EXTRAPOLATION_COLUMNS),
        ("training/runs.tsv", RUN_COLUMNS),
        ("gpt/<run>/log.tsv", LOG_COLUMNS),
    ],
)
def test_readme_outputs_section_names_every_column(table, columns):
    section = readme_section("Outputs and their columns")
    assert f"`{table}`" in section
    missing = [column for column in columns if f"`{column}`" not in section]
    assert not missing, f"README's 'Outputs and their columns' lacks {table}'s {missing}"
    assert "config/README.md" in section


def test_layered_config_files_merge_nested_keys(tmp_path):
    """What README's "Resuming, `--until` and layering configs" says of --configfile a b."""
    base = load_demo_config()
    base["encoding"]["sizes"] = [100, 350, 700]
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base, sort_keys=False))
    over = {"encoding": {"n_draws": 1}, "subjects": ["subj01"]}
    (tmp_path / "over.yaml").write_text(yaml.safe_dump(over))
    cmd = [str(SNAKEMAKE), "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path)]

    def dry_run(*configfiles):
        args = [*cmd, "--cores", "1", "-n", *configfiles]
        return subprocess.run(args, capture_output=True, text=True, cwd=tmp_path)

    proc = dry_run("--configfile", "base.yaml", "over.yaml")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    sizes = {int(s) for s in re.findall(r"size=(\d+), seed=\d", out)}
    assert sizes == {100, 350, 700}  # base's list, kept beside over's n_draws
    assert "seed=1" not in out and "subj02" not in out
    assert "subj01" in out
    # the flag twice: the last one's files alone (over.yaml has no models)
    repeated = dry_run("--configfile", "base.yaml", "--configfile", "over.yaml")
    assert repeated.returncode != 0
    assert "'models' is a required property" in repeated.stdout + repeated.stderr
