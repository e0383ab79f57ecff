"""The grid of GPT-2 training runs: its dimensions, each run's name and the runs a grid makes.

A run is a point of the grid's :data:`DIMENSIONS`: hidden size ``width``, ``layers``,
``heads``, training clips ``n_samples`` (its data size: distinct clips) and ``precision``,
named ``w<width>_l<layers>_h<heads>_n<n>_<precision>``. Design ``sweeps`` varies one dimension
at a time around the base (the study's design; the base is in every sweep); ``product``
takes every combination.

How long a run trains is its *schedule* (:data:`SCHEDULES`), apart from its data size:

- ``one_pass`` (every grid point): each clip seen once (``gpt.epochs`` times), so the
  optimiser steps grow with the data size, ⌈n · epochs / batch_size⌉ (the study's reading);
- ``equal_steps`` (``grid.equal_steps`` = S): the data-size runs (sweeps: the ``n_samples``
  sweep at the base; product: every point) trained again for S steps each, cycling over
  their clips in a reshuffled order every epoch, so data size and optimiser steps are no
  longer confounded. Such a point has ``steps`` = S and its name ends in ``_steps<S>``;
  where one pass already takes S steps the one-pass run is that grid's run too (no copy).

Light on purpose (standard library only): the workflow reads the grid when it plans a study.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from typing import Any

DIMENSIONS = ("width", "layers", "heads", "n_samples", "precision")
SCHEDULES = ("one_pass", "equal_steps")


def run_name(point: Mapping[str, Any]) -> str:
    """The name of a grid point (``_steps<S>`` at the end for the equal-steps schedule)."""
    name = (
        f"w{point['width']}_l{point['layers']}_h{point['heads']}"
        f"_n{point['n_samples']}_{point['precision']}"
    )
    return name + (f"_steps{point['steps']}" if point.get("steps") else "")


def schedule(point: Mapping[str, Any]) -> str:
    """The schedule of a grid point: ``equal_steps`` if it fixes its steps, else ``one_pass``."""
    return "equal_steps" if point.get("steps") else "one_pass"


def one_pass_steps(n_samples: int, batch_size: int, epochs: int = 1) -> int:
    """Optimiser steps of ``epochs`` passes over ``n_samples`` clips, ``batch_size`` a step."""
    return math.ceil(n_samples * epochs / batch_size)


def clips_seen(point: Mapping[str, Any], batch_size: int, epochs: int = 1) -> int:
    """Clips a run sees in training (with repeats): ``steps`` full batches for the
    equal-steps schedule, else ``epochs`` passes over its ``n_samples`` clips."""
    if point.get("steps"):
        return int(point["steps"]) * batch_size
    return int(point["n_samples"]) * epochs


def run_grid(
    grid: Mapping[str, Any], *, batch_size: int | None = None, epochs: int = 1
) -> dict[str, dict[str, Any]]:
    """Run name → grid point, from ``grid``: ``base`` (a value per dimension), a list of
    values per dimension (default: the base's alone), ``design`` (sweeps or product) and
    ``equal_steps`` (null, or the steps of the equal-steps schedule's runs: module
    docstring; it needs the runs' ``batch_size`` and ``epochs``). A one-pass point has the
    :data:`DIMENSIONS` alone; an equal-steps point also ``steps``."""
    base = dict(grid["base"])
    values = {d: list(grid.get(d) or [base[d]]) for d in DIMENSIONS}
    if grid.get("design", "sweeps") == "product":
        points = [
            dict(zip(DIMENSIONS, combo, strict=True))
            for combo in itertools.product(*values.values())
        ]
        data_points = points
    else:
        points = [base] + [{**base, d: v} for d in DIMENSIONS for v in values[d]]
        data_points = [{**base, "n_samples": n} for n in values["n_samples"]]
    runs = {}
    for point in points:
        if point["width"] % point["heads"]:
            raise ValueError(
                f"gpt.grid: width {point['width']} is not divisible by heads {point['heads']}"
            )
        runs.setdefault(run_name(point), point)
    steps = grid.get("equal_steps")
    if steps:
        if batch_size is None:
            raise ValueError("gpt.grid.equal_steps: the runs' batch_size is needed")
        for point in data_points:
            needed = one_pass_steps(point["n_samples"], batch_size)
            if steps < needed:
                raise ValueError(
                    f"gpt.grid.equal_steps: {steps} steps of {batch_size} clips do not see "
                    f"every one of {point['n_samples']} clips once (that takes {needed} steps)"
                )
            if one_pass_steps(point["n_samples"], batch_size, epochs) != steps:
                runs.setdefault(run_name({**point, "steps": steps}), {**point, "steps": steps})
    return runs
