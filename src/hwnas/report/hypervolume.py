"""Hypervolume over evaluations, normalised so that a reader can read it: 0 to 1.

Each objective is scaled by the range the counted evaluations span (counted: valid, every
objective finite, within every limit), and the reference point is the worst counted value of
each objective. Every counted point then lies in the unit box and the curve runs from 0 to at
most 1, where 1 would mean one network was the best of the run in every objective at once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from hwnas.pareto import Objective, feasible_mask, objective_matrix, running_hypervolume

Metrics = Mapping[str, float] | None


@dataclass(frozen=True)
class Scale:
    """The box the curve is normalised to, in real units (a "max" objective's ideal is its
    largest value, its reference its smallest)."""

    objectives: tuple[Objective, ...]
    ideal: tuple[float, ...]
    reference: tuple[float, ...]
    counted: int


def counted_mask(
    metrics: Sequence[Metrics], objectives: Sequence[Objective], constraints: Sequence[Objective]
) -> list[bool]:
    """Which evaluations count: valid, every objective present and finite, every limit met (a
    limit on a metric the evaluation lacks is not met)."""
    limits = [*objectives, *constraints]
    limited = [o for o in limits if o.limit is not None]
    ok = []
    for m in metrics:
        if m is None or any(o.name not in m for o in [*objectives, *limited]):
            ok.append(False)
            continue
        values = [m[o.name] for o in objectives]
        if not all(isinstance(v, int | float) and math.isfinite(v) for v in values):
            ok.append(False)
            continue
        ok.append(bool(feasible_mask([m], limits)[0]) if limited else True)
    return ok


def hypervolume_scale(
    metrics: Sequence[Metrics],
    objectives: Sequence[Objective],
    constraints: Sequence[Objective] = (),
) -> Scale | None:
    """The normalisation of :func:`hypervolume_curve`; ``None`` when nothing counts."""
    ok = counted_mask(metrics, objectives, constraints)
    counted = [m for m, keep in zip(metrics, ok, strict=True) if keep]
    if not counted:
        return None
    F = objective_matrix(counted, objectives)
    lo, hi = F.min(axis=0), F.max(axis=0)
    return Scale(
        tuple(objectives),
        tuple(float(o.to_min(v)) for o, v in zip(objectives, lo, strict=True)),
        tuple(float(o.to_min(v)) for o, v in zip(objectives, hi, strict=True)),
        len(counted),
    )


def hypervolume_curve(
    metrics: Sequence[Metrics],
    objectives: Sequence[Objective],
    constraints: Sequence[Objective] = (),
) -> list[float]:
    """Normalised hypervolume of the evaluated front after each evaluation, in [0, 1] and
    non-decreasing. Invalid, non-finite and out-of-limit evaluations leave it unchanged.

    An objective every counted point shares (zero range) scales to 0 with its reference at 1,
    so it neither adds to nor removes from the volume. A point at the worst value of any
    objective bounds no volume (the reference is not strictly beaten there)."""
    ok = counted_mask(metrics, objectives, constraints)
    counted = [m for m, keep in zip(metrics, ok, strict=True) if keep]
    if not counted:
        return [0.0] * len(metrics)
    F = objective_matrix(counted, objectives)
    lo, hi = F.min(axis=0), F.max(axis=0)
    scale = np.where(hi > lo, hi - lo, 1.0)
    rows = iter((F - lo) / scale)
    points = [next(rows) if keep else None for keep in ok]
    curve = running_hypervolume(points, np.ones(len(objectives)))
    return [min(1.0, max(0.0, v)) for v in curve]
