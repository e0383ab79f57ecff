"""The grid of GPT-2 training runs: its dimensions, each run's name and the runs a grid makes.

A run is a point of the grid's :data:`DIMENSIONS`: hidden size ``width``, ``layers``,
``heads``, training clips ``n_samples`` and ``precision``, named
``w<width>_l<layers>_h<heads>_n<n>_<precision>``. Design ``sweeps`` varies one dimension at
a time around the base (the study's design; the base is in every sweep); ``product`` takes
every combination.

Light on purpose (standard library only): the workflow reads the grid when it plans a study.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

DIMENSIONS = ("width", "layers", "heads", "n_samples", "precision")


def run_name(point: Mapping[str, Any]) -> str:
    """The name of a grid point."""
    return (
        f"w{point['width']}_l{point['layers']}_h{point['heads']}"
        f"_n{point['n_samples']}_{point['precision']}"
    )


def run_grid(grid: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Run name → grid point, from ``grid``: ``base`` (a value per dimension), a list of
    values per dimension (default: the base's alone) and ``design`` (sweeps or product)."""
    base = dict(grid["base"])
    values = {d: list(grid.get(d) or [base[d]]) for d in DIMENSIONS}
    if grid.get("design", "sweeps") == "product":
        points = [
            dict(zip(DIMENSIONS, combo, strict=True))
            for combo in itertools.product(*values.values())
        ]
    else:
        points = [base] + [{**base, d: v} for d in DIMENSIONS for v in values[d]]
    runs = {}
    for point in points:
        if point["width"] % point["heads"]:
            raise ValueError(
                f"gpt.grid: width {point['width']} is not divisible by heads {point['heads']}"
            )
        runs.setdefault(run_name(point), point)
    return runs
