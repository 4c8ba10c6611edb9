"""Objectives and Pareto tools.

Everything below ``Objective`` works on minimisation matrices (rows are points, columns are
objectives), so "max" objectives are negated once, at the boundary, and no routine has to care
about directions. Routines assume ``F`` holds no NaN.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from hwnas.errors import HwnasError

Direction = Literal["min", "max"]

_SPEC = re.compile(r"\s*([^\s:<>=]+)\s*:\s*(min|max)\s*(?:(<=|>=)\s*(\S+))?\s*")
_SPEC_FORM = "NAME:min|max[<=|>=LIMIT]"
# Comparisons are chunked so that no temporary holds more than this many elements.
_CHUNK_ELEMENTS = 1 << 22


@dataclass(frozen=True)
class Objective:
    """One metric to optimise, optionally with a limit it must not be worse than."""

    name: str
    direction: Direction = "min"
    limit: float | None = None

    def __post_init__(self) -> None:
        # Objectives are also rebuilt from stored configs, not only from parse().
        if self.direction not in ("min", "max"):
            raise HwnasError(f"objective {self.name!r}: direction must be 'min' or 'max'")

    @classmethod
    def parse(cls, spec: str) -> Objective:
        """Parse ``NAME:min|max[<=|>=LIMIT]``, e.g. ``latency_ms:min<=5`` or ``acc:max``."""
        match = _SPEC.fullmatch(spec)
        if match is None:
            raise HwnasError(f"bad objective {spec!r}: expected {_SPEC_FORM}")
        name, direction, op, limit_text = match.groups()
        if op is None:
            return cls(name, direction)
        if op != {"min": "<=", "max": ">="}[direction]:
            raise HwnasError(
                f"bad objective {spec!r}: a {direction} objective takes a "
                f"{'<=' if direction == 'min' else '>='} limit ({_SPEC_FORM})"
            )
        try:
            limit = float(limit_text)
        except ValueError:
            limit = math.nan
        if not math.isfinite(limit):
            raise HwnasError(f"bad objective {spec!r}: limit must be a finite number")
        return cls(name, direction, limit)

    @property
    def spec(self) -> str:
        """The text ``parse`` reads back: ``latency_ms:min<=5.0``."""
        if self.limit is None:
            return f"{self.name}:{self.direction}"
        return (
            f"{self.name}:{self.direction}{'<=' if self.direction == 'min' else '>='}{self.limit!r}"
        )

    def to_min(self, value: float | np.ndarray) -> float | np.ndarray:
        """The value in minimisation form (negated for "max"); floats and arrays alike."""
        return -value if self.direction == "max" else value


def objective_matrix(
    metrics: Sequence[Mapping[str, float]], objectives: Sequence[Objective]
) -> np.ndarray:
    """The ``(n, m)`` minimisation matrix of ``metrics`` under ``objectives``."""
    F = np.empty((len(metrics), len(objectives)))
    for i, values in enumerate(metrics):
        for j, objective in enumerate(objectives):
            if objective.name not in values:
                raise HwnasError(
                    f"objective {objective.name!r} has no metric in result {i} "
                    f"(metrics: {', '.join(sorted(values)) or 'none'})"
                )
            F[i, j] = objective.to_min(float(values[objective.name]))
    return F


def feasible_mask(
    metrics: Sequence[Mapping[str, float]], objectives: Sequence[Objective]
) -> np.ndarray:
    """Which results meet every objective limit (a NaN value meets none)."""
    limited = [o for o in objectives if o.limit is not None]
    F = objective_matrix(metrics, limited)
    limits = np.array([o.to_min(o.limit) for o in limited])
    return np.all(F <= limits, axis=1)


def _dominator_counts(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """For each row of ``B``, how many rows of ``A`` dominate it."""
    counts = np.zeros(len(B), dtype=np.int64)
    step = max(1, _CHUNK_ELEMENTS // max(1, B.size))
    for start in range(0, len(A), step):
        a = A[start : start + step, None, :]
        dominates = np.all(a <= B, axis=2) & np.any(a < B, axis=2)
        counts += dominates.sum(axis=0)
    return counts


def non_dominated_sort(F: np.ndarray) -> list[np.ndarray]:
    """Fronts as index arrays, best first; identical points share a front.

    Peels fronts off by dominator counts, so the work is O(n^2 m) and memory stays bounded.
    """
    F = np.asarray(F, dtype=float)
    counts = _dominator_counts(F, F)
    remaining = np.arange(len(F))
    fronts = []
    while len(remaining):
        on_front = counts[remaining] == 0
        front, remaining = remaining[on_front], remaining[~on_front]
        fronts.append(front)
        counts[remaining] -= _dominator_counts(F[front], F[remaining])
    return fronts


def pareto_mask(F: np.ndarray) -> np.ndarray:
    """Which points no other point dominates (equal points are all kept).

    Only a lexicographically smaller point can dominate another, so points are visited in
    lexicographic order and each is checked against the front found so far (domination is
    transitive, so the front is all that needs checking).
    """
    F = np.asarray(F, dtype=float)
    n, m = F.shape
    order = np.lexsort(F.T[::-1])
    if m == 2:
        return _pareto_mask_2d(F, order)
    mask = np.zeros(n, dtype=bool)
    front = np.empty((n, m))
    size = 0
    for i in order:
        kept = front[:size]
        if not np.any(np.all(kept <= F[i], axis=1) & np.any(kept < F[i], axis=1)):
            mask[i] = True
            front[size] = F[i]
            size += 1
    return mask


def _pareto_mask_2d(F: np.ndarray, order: np.ndarray) -> np.ndarray:
    """In (f1, f2) order, a point is dominated exactly when a distinct earlier point has f2 no
    larger. Copies of the point itself must not count, so look only before its first copy.
    """
    f1, f2 = F[order, 0], F[order, 1]
    new = np.r_[True, (f1[1:] != f1[:-1]) | (f2[1:] != f2[:-1])]
    first_copy = np.maximum.accumulate(np.where(new, np.arange(len(F)), 0))
    best_before = np.r_[np.inf, np.minimum.accumulate(f2)][first_copy]
    mask = np.empty(len(F), dtype=bool)
    mask[order] = ~(best_before <= f2)
    return mask


def crowding_distance(F: np.ndarray) -> np.ndarray:
    """NSGA-II crowding distance: boundary points get inf so they are always kept."""
    F = np.asarray(F, dtype=float)
    if len(F) <= 2:
        return np.full(len(F), np.inf)
    distance = np.zeros(len(F))
    for j in range(F.shape[1]):
        order = np.argsort(F[:, j], kind="stable")
        values = F[order, j]
        with np.errstate(invalid="ignore"):  # inf - inf: infeasible points at both ends
            span = values[-1] - values[0]
        if span > 0:
            distance[order[1:-1]] += (values[2:] - values[:-2]) / span
        distance[order[[0, -1]]] = np.inf
    return distance


def _hypervolume_2d(F: np.ndarray, ref: np.ndarray) -> float:
    """Sweep in f1 order; each new best f2 adds the slab between it and the previous best."""
    order = np.lexsort((F[:, 1], F[:, 0]))
    f1, f2 = F[order, 0], F[order, 1]
    best = np.minimum.accumulate(f2)
    previous = np.r_[ref[1], best[:-1]]
    return float(np.sum((ref[0] - f1) * (previous - best)))


def hypervolume(F: np.ndarray, ref: Sequence[float]) -> float:
    """Volume dominated by ``F`` and bounded by ``ref``; exact for any number of objectives.

    Points not strictly better than ``ref`` in every objective bound no volume, so they are
    dropped rather than clipped. Two objectives: a sort and a sum, here. Three or more:
    moocore's compiled exact algorithms (HV3D+ in 3-D, O(n log n); the back-end pymoo's own
    indicator calls): in 3-D 20x faster than slicing the volume in numpy at 20 points and
    350x at 2,000, equal to 1e-15 (``bench/hypervolume.py``), which matters where a search
    scores many candidate fronts a round."""
    ref = np.asarray(ref, dtype=float)
    F = np.asarray(F, dtype=float).reshape(-1, len(ref))
    F = F[np.all(F < ref, axis=1)]
    if len(F) == 0:
        return 0.0
    if len(ref) == 1:
        return float(ref[0] - F.min())
    if len(ref) == 2:
        return _hypervolume_2d(F, ref)
    import moocore

    return float(moocore.hypervolume(F, ref=ref))


def running_hypervolume(points: Sequence[np.ndarray | None], reference: np.ndarray) -> list[float]:
    """Hypervolume of the points seen so far, after each point (minimisation form). ``None``
    (an invalid or infeasible result) leaves it as it was. The front is kept incrementally,
    so a long run costs one hypervolume per improvement, not a re-sort per evaluation."""
    front = np.zeros((0, len(reference)))
    out, hv = [], 0.0
    for point in points:
        if point is not None and not np.any(np.all(front <= point, axis=1)):
            front = np.vstack([front[~np.all(point <= front, axis=1)], point])
            hv = hypervolume(front, reference)
        out.append(hv)
    return out


def knee_index(F: np.ndarray) -> int:
    """The front's knee: the point furthest below the hyperplane through its extreme points.

    Objectives are scaled to [0, 1] over ``F`` first so that units do not pick the knee. When
    the extremes do not span a hyperplane (shared extremes, flat objectives) the point nearest
    the ideal point is the knee instead.
    """
    F = np.asarray(F, dtype=float)
    if len(F) == 0:
        raise ValueError("knee_index of an empty front")
    low, span = F.min(axis=0), np.ptp(F, axis=0)
    N = (F - low) / np.where(span > 0, span, 1.0)
    extremes = N[np.argmin(N, axis=0)]
    if np.linalg.matrix_rank(extremes) < F.shape[1]:
        return int(np.argmin(np.linalg.norm(N, axis=1)))
    normal = np.linalg.solve(extremes, np.ones(F.shape[1]))
    return int(np.argmax((1.0 - N @ normal) / np.linalg.norm(normal)))
