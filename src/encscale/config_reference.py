"""The config reference, ``config/README.md``, written from the workflow's JSON schemas.

One section per schema (the image studies' ``config.schema.yaml``, the movie study's
``movies.schema.yaml``), and in it one table of the top-level keys and one per top-level
object, each row a key path (``encoding.sizes``, ``models.<name>.timm``; a map's entries
named by its ``propertyNames`` title) with its type, default, allowed values and
description. ``$ref`` s are followed, into ``common.schema.yaml`` too; an object definition
that a map's entries take (``models.<name>``) is listed there in full, and named at the
other keys that refer to it (``demo.hidden_model``).

A default is the schema's ``default`` (what validation fills in), else its ``x-default``
(words: what the workflow computes from other keys), else what its ``required`` lists make
of it: ``required``, or required with or unless another key. ``encscale-config-reference``
(``make config-reference``) writes the file; the tests check it is up to date.
"""

from __future__ import annotations

import argparse
import copy
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

SCHEMA_PATHS = ("workflow/schemas/config.schema.yaml", "workflow/schemas/movies.schema.yaml")
OUTPUT = "config/README.md"
# The JSON Schema keywords the schemas may use; anything else is a typo (e.g. a comma in a
# YAML flow mapping's description that made a key of its tail).
KNOWN_KEYWORDS = frozenset(
    "$schema $ref $defs $comment title description default x-default type enum const "
    "properties additionalProperties unevaluatedProperties required propertyNames "
    "minProperties items minItems maxItems uniqueItems minimum maximum exclusiveMinimum "
    "exclusiveMaximum pattern minLength oneOf anyOf not if then".split()
)
HEADER = """\
# Config reference

<!-- Written by `make config-reference` (encscale-config-reference) from
workflow/schemas/*.schema.yaml: edit the schemas, not this file. -->

Every key a study's config may set. Snakemake validates the config against the schemas in
`workflow/schemas/` before anything runs and fills in every default shown `like this`; a
key not listed here is an error. A default in words is computed by the workflow from other
keys when the key is absent; **required** keys have no default. A study's config sets only
what differs from these defaults (`config/*.yaml`); several config files can be layered
(README, "Resuming, `--until` and layering configs").
"""


@dataclass(frozen=True)
class Row:
    """One key of the reference: its path, its schema ($refs merged in), what its parent
    requires of it (``""``: nothing) and, for an object listed in full elsewhere, where."""

    path: str
    schema: Mapping[str, Any]
    requirement: str = ""
    same_as: str = ""


class Schemas:
    """The schema files, loaded once each, every ``$ref`` made absolute (file#pointer)."""

    def __init__(self) -> None:
        self._docs: dict[Path, dict] = {}

    def load(self, path: str | Path) -> dict:
        path = Path(path).resolve()
        if path not in self._docs:
            doc = yaml.safe_load(path.read_text(encoding="utf-8"))
            self._docs[path] = _absolute_refs(doc, path)
        return self._docs[path]

    def target(self, ref: str) -> dict:
        """The schema a (made absolute) ``$ref`` points to."""
        file, _, pointer = ref.partition("#")
        node: Any = self.load(file)
        for part in filter(None, pointer.split("/")):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def resolve(self, node: Mapping[str, Any]) -> dict:
        """``node`` with its ``$ref`` (recursively) merged in: the node's own keywords win,
        its properties come first and its required lists add up."""
        node = dict(node)
        ref = node.pop("$ref", None)
        if ref is None:
            return node
        return _merge(self.resolve(self.target(ref)), node)


def _absolute_refs(node: Any, path: Path) -> Any:
    if isinstance(node, dict):
        out = {k: _absolute_refs(v, path) for k, v in node.items()}
        if isinstance(out.get("$ref"), str):
            file, _, pointer = out["$ref"].partition("#")
            out["$ref"] = f"{(path.parent / file).resolve() if file else path}#{pointer}"
        return out
    if isinstance(node, list):
        return [_absolute_refs(v, path) for v in node]
    return node


def _merge(base: Mapping[str, Any], own: Mapping[str, Any]) -> dict:
    out = copy.deepcopy(dict(base))
    for key, value in own.items():
        if key == "properties":
            theirs = out.get("properties", {})
            out[key] = {**value, **{k: v for k, v in theirs.items() if k not in value}}
        elif key == "required":
            out[key] = list(dict.fromkeys([*out.get(key, []), *value]))
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def requirement(parent: Mapping[str, Any], name: str, child: Mapping[str, Any]) -> str:
    """What ``parent`` (resolved) requires of its property ``name``: ``required``, required
    with another key (of the same ``oneOf`` alternative), unless another alternative's key,
    or when a key has a value (``if``/``then``); ``""`` if nothing."""
    if name in parent.get("required", []):
        return "required"
    notes = []
    branches = [b for b in parent.get("oneOf", []) + parent.get("anyOf", []) if "required" in b]
    for branch in branches:
        if name not in branch["required"]:
            continue
        if "default" in child or "x-default" in child:
            others = [k for k in branch["required"] if k != name]
            notes.append("required with " + ", ".join(f"`{k}`" for k in others))
        else:
            others = [b["required"][0] for b in branches if b is not branch]
            notes.append("required unless " + " or ".join(f"`{k}`" for k in others) + " is given")
    cond, then = parent.get("if", {}), parent.get("then", {})
    if name in then.get("required", []):
        whens = [
            f"`{k}` is `{_inline(s['const'])}`"
            for k, s in cond.get("properties", {}).items()
            if "const" in s
        ]
        notes.append("required when " + " and ".join(whens) if whens else "required")
    return "; ".join(notes)


def _children(
    schemas: Schemas, node: Mapping[str, Any], path: str
) -> Iterator[tuple[str, Mapping[str, Any], str]]:
    """(path, schema, requirement) of a resolved node's keys: its properties, a map's
    entries, the properties of an object alternative of its oneOf/anyOf, of its items."""
    for name, child in node.get("properties", {}).items():
        yield _join(path, name), child, requirement(node, name, schemas.resolve(child))
    entries = node.get("additionalProperties")
    if isinstance(entries, dict):
        key = node.get("propertyNames", {}).get("title", "key")
        needed = "required (one or more)" if node.get("minProperties", 0) >= 1 else ""
        yield _join(path, f"<{key}>"), entries, needed
    for branch in node.get("oneOf", []) + node.get("anyOf", []):
        branch = schemas.resolve(branch)
        for name, child in branch.get("properties", {}).items():
            needed = requirement(branch, name, schemas.resolve(child))
            yield (
                _join(path, name),
                child,
                needed.replace("required", "required in the object form"),
            )
    items = node.get("items")
    if isinstance(items, dict):
        yield from _children(schemas, schemas.resolve(items), f"{path}[]")


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _object_ref(schemas: Schemas, node: Mapping[str, Any]) -> str | None:
    """The ``$ref`` of a key that is an object definition with keys of its own, and nothing
    beside (a key that adds properties to its definition is a definition of its own)."""
    ref = node.get("$ref")
    if not isinstance(ref, str) or "properties" in node:
        return None
    return ref if _has_keys(schemas, schemas.resolve(node)) else None


def reference_rows(schema_path: str | Path, schemas: Schemas | None = None) -> list[Row]:
    """Every key of a schema, depth first in the schema's order (``$ref`` s followed; a
    map's entries' definition listed in full there only)."""
    schemas = schemas or Schemas()
    root = schemas.resolve(schemas.load(schema_path))
    preferred: dict[str, str] = {}  # definition → the first map's entries that take it

    def scan(node: Mapping[str, Any], path: str, seen: frozenset) -> None:
        for child_path, child, _ in _children(schemas, node, path):
            ref = _object_ref(schemas, child)
            if ref in seen:
                continue
            if ref and child_path.endswith(">"):
                preferred.setdefault(ref, child_path)
            scan(schemas.resolve(child), child_path, seen | {ref} if ref else seen)

    scan(root, "", frozenset())
    rows: list[Row] = []

    def walk(node: Mapping[str, Any], path: str, seen: frozenset) -> None:
        for child_path, child, needed in _children(schemas, node, path):
            ref = _object_ref(schemas, child)
            home = preferred.get(ref, child_path) if ref else child_path
            rows.append(
                Row(child_path, schemas.resolve(child), needed, "" if home == child_path else home)
            )
            if home == child_path and ref not in seen:  # a definition inside itself: once
                walk(schemas.resolve(child), child_path, seen | {ref} if ref else seen)

    walk(root, "", frozenset())
    paths = {row.path for row in rows}
    for row in rows:
        if row.same_as and row.same_as not in paths:
            raise ValueError(f"{schema_path}: {row.path} refers to {row.same_as}, not listed")
    return rows


def _has_keys(schemas: Schemas, node: Mapping[str, Any]) -> bool:
    return any(True for _ in _children(schemas, node, ""))


def type_text(node: Mapping[str, Any], schemas: Schemas) -> str:
    """The JSON type(s) of a resolved key, in words: ``list of integer``, ``string or null``."""
    branches = node.get("oneOf", []) + node.get("anyOf", [])
    if "type" not in node and branches:
        parts = [type_text(schemas.resolve(b), schemas) for b in branches]
        return " or ".join(dict.fromkeys(p for p in parts if p))
    types = node.get("type")
    if types is None and "const" in node:
        types = _json_type(node["const"])
    out = []
    for kind in types if isinstance(types, list) else [types] if types else []:
        if kind == "array" and isinstance(node.get("items"), dict):
            item = type_text(schemas.resolve(node["items"]), schemas)
            out.append(f"list of ({item})" if " or " in item else f"list of {item}")
        else:
            out.append("list" if kind == "array" else kind)
    return " or ".join(out)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return {str: "string", list: "array", dict: "object"}.get(type(value), "")


def allowed_text(node: Mapping[str, Any], schemas: Schemas) -> str:
    """A resolved key's allowed values: enum, const, bounds, pattern, list and map limits,
    and those of its items and alternatives."""
    parts = []
    if "enum" in node:
        parts.append(", ".join(f"`{_inline(v)}`" for v in node["enum"]))
    if "const" in node:
        parts.append(f"`{_inline(node['const'])}`")
    for keyword, sign in (
        ("minimum", "≥"),
        ("exclusiveMinimum", ">"),
        ("maximum", "≤"),
        ("exclusiveMaximum", "<"),
    ):
        if keyword in node:
            parts.append(f"{sign} {_inline(node[keyword])}")
    if "pattern" in node:
        parts.append(f"matches `{node['pattern']}`")
    if node.get("minLength") == 1:
        parts.append("non-empty")
    lo, hi = node.get("minItems"), node.get("maxItems")
    if lo is not None and lo == hi:
        parts.append(f"{lo} items")
    else:
        parts += [f"≥ {lo} items"] if lo else []
        parts += [f"≤ {hi} items"] if hi is not None else []
    if node.get("uniqueItems"):
        parts.append("no repeats")
    if isinstance(node.get("items"), dict):
        each = allowed_text(schemas.resolve(node["items"]), schemas)
        if each:
            parts.insert(0, f"each: {each}")
    names = node.get("propertyNames", {})
    if "pattern" in names:
        parts.append(f"names match `{names['pattern']}`")
    if "const" in names.get("not", {}):
        parts.append(f"not `{names['not']['const']}`")
    alternatives = []
    for branch in node.get("oneOf", []) + node.get("anyOf", []):
        branch = schemas.resolve(branch)
        text = allowed_text(branch, schemas)
        kind = type_text(branch, schemas)
        if "const" in branch:
            alternatives.append(text)
        elif text:
            alternatives.append(f"{kind}: {text}")
        elif kind:
            alternatives.append(kind)
    if alternatives:
        parts.append("; or ".join(alternatives))
    return "; ".join(parts)


def default_text(row: Row) -> str:
    """The default column: the schema's default, its x-default in words, or what is
    required of the key."""
    node = row.schema
    if "default" in node:
        text = f"`{_inline(node['default'])}`"
        return f"{text} ({row.requirement})" if row.requirement else text
    if "x-default" in node:
        return _text(node["x-default"])
    return f"**{row.requirement}**" if row.requirement else ""


def _inline(value: Any) -> str:
    """A value as YAML on one line, as a config would write it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=10**6)
    return text.strip().removesuffix("...").strip()


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _text(text: Any) -> str:
    """Schema prose as Markdown text: ``*`` not emphasis, ``<name>`` not an HTML tag."""
    return re.sub(r"<(?=[A-Za-z/])", "&lt;", str(text).replace("*", "\\*"))


def _description(row: Row) -> str:
    text = _text(row.schema.get("description", ""))
    if row.same_as:
        text += f" (its keys are those of `{row.same_as}`)"
    return text


def _table(rows: Sequence[Row], schemas: Schemas) -> list[str]:
    lines = ["| key | type | default | allowed | description |", "|---|---|---|---|---|"]
    for row in rows:
        cells = (
            f"`{row.path}`",
            type_text(row.schema, schemas),
            default_text(row),
            allowed_text(row.schema, schemas),
            _description(row),
        )
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return lines


def schema_section(schema_path: str | Path, schemas: Schemas | None = None) -> str:
    """One schema's section: its title and description, a table of its top-level keys and
    one of every top-level object's keys."""
    schemas = schemas or Schemas()
    root = schemas.resolve(schemas.load(schema_path))
    rows = reference_rows(schema_path, schemas)
    title = root.get("title", Path(schema_path).name)
    lines = [f"## {title}", "", _cell(_text(root.get("description", ""))), ""]
    lines += [f"Schema: `workflow/schemas/{Path(schema_path).name}`.", ""]
    lines += ["### Top-level keys", "", *_table([r for r in rows if "." not in r.path], schemas)]
    for top in (r for r in rows if "." not in r.path):
        nested = [r for r in rows if r.path.startswith(f"{top.path}.")]
        if not nested:
            continue
        lines += ["", f"### `{top.path}`", ""]
        if top.schema.get("description"):
            lines += [_cell(_text(top.schema["description"])), ""]
        lines += _table(nested, schemas)
    return "\n".join(lines) + "\n"


def config_reference(schema_paths: Sequence[str | Path]) -> str:
    """The config reference (Markdown) of ``schema_paths``: one section per schema."""
    schemas = Schemas()
    return HEADER + "".join("\n" + schema_section(p, schemas) for p in schema_paths)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="encscale-config-reference",
        description="Write the config reference (Markdown) from the workflow's JSON schemas.",
    )
    parser.add_argument(
        "schemas", nargs="*", default=list(SCHEMA_PATHS), help="schema files, one section each"
    )
    parser.add_argument("-o", "--output", default=OUTPUT, help="'-' for standard output")
    args = parser.parse_args(argv)
    text = config_reference(args.schemas)
    if args.output == "-":
        print(text, end="")
    else:
        Path(args.output).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
