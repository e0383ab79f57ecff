"""Model entries checked when a workflow is planned, before any job runs: a timm entry's
name (with the closest registered names when it is not one), its pretrained tag, its
``kwargs``, its ``layers`` and its pool sizes, against timm's registry and the model built on
the meta device (no weights, no download, no memory).

Planning imports no torch: :func:`model_problems` runs the check in a child Python
(``python -m encscale.vision.model_check``) and keeps its verdict in a cache file keyed by
the timm and torch versions and the entries, so a study is checked once, not at every
``snakemake`` call. Plugin entries (``factory``) are not checked here: their code is the
lab's own and is imported only by their jobs.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

CACHE_ENV = "ENCSCALE_CACHE"


def cache_dir() -> Path:
    """Where verdicts are kept: $ENCSCALE_CACHE, else $XDG_CACHE_HOME/encscale, else
    ~/.cache/encscale."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "encscale"


def _versions() -> dict[str, str]:
    found = {}
    for dist in ("timm", "torch"):
        try:
            found[dist] = version(dist)
        except PackageNotFoundError:
            found[dist] = "absent"
    return found


def model_problems(
    models: Mapping[str, Mapping[str, Any]], pool_sizes: Mapping[str, Sequence[int] | str]
) -> dict[str, str]:
    """{model: what is wrong with its entry} for the timm entries of ``models`` (a config's
    ``models:`` mapping); ``pool_sizes``: each model's k list, or "all". Empty when every
    entry builds, its layers exist and each k fits one of its chosen maps."""
    return _verdict(models, pool_sizes)["problems"]


def model_shapes(
    models: Mapping[str, Mapping[str, Any]], pool_sizes: Mapping[str, Sequence[int] | str]
) -> dict[str, dict[str, Any]]:
    """{model: {"n_params", "maps": [[C, h, w], …] of its chosen layers, "flops": forward
    FLOP per image}} of the sound timm entries of ``models``, from the same cached check."""
    return _verdict(models, pool_sizes)["shapes"]


def _verdict(
    models: Mapping[str, Mapping[str, Any]], pool_sizes: Mapping[str, Sequence[int] | str]
) -> dict[str, dict[str, Any]]:
    """The child's {"problems": …, "shapes": …} for the timm entries, cached."""
    entries = {
        name: {"spec": dict(spec), "pool_sizes": pool_sizes[name]}
        for name, spec in models.items()
        if "timm" in spec
    }
    if not entries:
        return {"problems": {}, "shapes": {}}
    request = json.dumps({"versions": _versions(), "entries": entries, "format": 2}, sort_keys=True)
    cache = cache_dir() / "model-checks" / f"{hashlib.sha256(request.encode()).hexdigest()}.json"
    if cache.is_file():
        return json.loads(cache.read_text())
    proc = subprocess.run(
        [sys.executable, "-m", __name__],
        input=json.dumps(entries),
        capture_output=True,
        text=True,
        env=dict(os.environ, HF_HUB_OFFLINE="1"),
    )
    if proc.returncode != 0:
        raise RuntimeError(f"the check of the models' entries failed:\n{proc.stderr[-3000:]}")
    verdict = json.loads(proc.stdout.strip().splitlines()[-1])
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(verdict))
    tmp.replace(cache)
    return verdict


def closest(name: str, names: Sequence[str], n: int = 3) -> str:
    """``name``'s closest matches among ``names``, as a phrase for a message."""
    matches = difflib.get_close_matches(name, names, n=n, cutoff=0.5)
    return f"; closest: {', '.join(matches)}" if matches else ""


def module_patterns(model: Any) -> list[str]:
    """A model's submodule names with their numbered parts as ``*`` (``stages.*.blocks.*``),
    the names a ``layers`` entry is written with."""
    return [
        ".".join("*" if part.isdigit() else part for part in name.split("."))
        for name, _ in model.named_modules()
        if name
    ]


def timm_entry_check(
    spec: Mapping[str, Any], pool_sizes: Sequence[int] | str
) -> tuple[str | None, dict[str, Any] | None]:
    """(what is wrong with one timm entry, or None; its shapes when sound: ``n_params``,
    ``maps`` [[C, h, w], …] and ``flops``, forward FLOP per image); imports timm and torch."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from encscale.torchtools import import_timm
    from encscale.vision.layers import LayerExtractor
    from encscale.vision.registry import input_spec, reported_params

    timm = import_timm()
    name = spec["timm"]
    arch, _, tag = name.partition(".")
    if arch not in timm.list_models():
        problem = f"timm: '{arch}' is not a model of timm {timm.__version__}"
        return problem + closest(arch, timm.list_models()), None
    if tag and name not in timm.list_pretrained(f"{arch}.*"):
        tags = [t.partition(".")[2] for t in timm.list_pretrained(f"{arch}.*")]
        return f"timm: '{arch}' has no pretrained tag '{tag}'" + closest(tag, tags, n=5), None
    try:
        with torch.device("meta"):
            model = timm.create_model(
                name, pretrained=False, num_classes=0, **spec.get("kwargs", {})
            ).eval()
    except (TypeError, ValueError, RuntimeError, KeyError) as err:
        return f"timm '{name}' cannot be built with kwargs {spec.get('kwargs', {})}: {err}", None
    try:
        extractor = LayerExtractor(model, dict(spec), keep_prefix=False)
    except (KeyError, ValueError) as err:
        problem = f"layers: {err.args[0]}"
        layers = spec.get("layers")
        if isinstance(layers, list) and all(isinstance(n, str) for n in layers):
            patterns = list(dict.fromkeys(module_patterns(model)))
            hints = [closest(n, patterns) for n in layers if n not in patterns]
            problem += next((h for h in hints if h), "")
        return problem, None
    side = input_spec(model, spec).size
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        maps = [fmap for fmap, _ in extractor(torch.zeros(1, 3, side, side, device="meta"))]
    extractor.close()
    shapes = dict(
        n_params=reported_params(dict(spec), model),
        maps=[[int(d) for d in m.shape[1:]] for m in maps],
        flops=float(counter.get_total_flops()),
    )
    if isinstance(pool_sizes, str):
        return None, shapes
    largest = max(min(m.shape[-2:]) for m in maps)
    too_big = [k for k in pool_sizes if k > largest]
    if too_big:
        return (
            f"pool sizes {too_big} exceed every chosen layer's map (the largest is "
            f"{largest}×{largest} at input {side} px): they would repeat k = {largest}"
        ), None
    return None, shapes


def main() -> None:
    """The child's side: entries as JSON on stdin, {"problems": {model: problem}, "shapes":
    {model: shapes}} as JSON on stdout."""
    entries = json.loads(sys.stdin.read())
    verdict: dict[str, dict[str, Any]] = {"problems": {}, "shapes": {}}
    for model, entry in entries.items():
        problem, shapes = timm_entry_check(entry["spec"], entry["pool_sizes"])
        if problem:
            verdict["problems"][model] = problem
        else:
            verdict["shapes"][model] = shapes
    print(json.dumps(verdict))


if __name__ == "__main__":
    main()
