"""The searcher contract: ask for archs, tell their results. Searchers know only numbers.

A searcher's state must be rebuildable by replaying stored results through ``tell`` (that is
how a killed run resumes), so ``tell`` accepts any evaluated archs, asked or not.

Feasibility: an arch violates by the sum of its raw excesses over the limits of the
objectives and of the ``constraints`` (metrics with a limit that are not optimised). A told
result that lacks a constraint metric, or holds a non-finite value there, cannot be shown to
satisfy it: it counts as violating by ``MISSING_CONSTRAINT_VIOLATION`` per such constraint, a
finite value larger than any real excess, so the arch ranks behind every measured one but
stays valid (its objectives are known). An infinite violation still means an invalid arch.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from hwnas.pareto import Objective, crowding_distance, non_dominated_sort
from hwnas.space import Arch, Space

Metrics = Mapping[str, float] | None

MISSING_CONSTRAINT_VIOLATION = 1e100
"""Violation added for each constraint whose metric a result lacks (or has as NaN/inf)."""


class Searcher(ABC):
    """Base for all searchers: keeps the evaluated archive in minimisation form.

    ``batch_size`` is how many archs the study asks for at a time: a generation for NSGA-II,
    one predictor round for LINAS.

    ``constraints`` are metrics that are not optimised but must stay within their ``limit``
    ("min": value <= limit, "max": value >= limit); every one needs a limit.
    """

    batch_size: int = 1

    def __init__(
        self,
        space: Space,
        objectives: Sequence[Objective],
        seed: int = 0,
        constraints: Sequence[Objective] = (),
    ) -> None:
        if not objectives:
            raise ValueError("a searcher needs at least one objective")
        for constraint in constraints:
            if constraint.limit is None:
                raise ValueError(f"constraint {constraint.name!r} has no limit")
            if not np.isfinite(constraint.limit):
                raise ValueError(f"constraint {constraint.name!r}: limit must be finite")
        self.constraints = tuple(constraints)
        self.constraint_limits = np.array([float(c.to_min(c.limit)) for c in self.constraints])
        self.limited = tuple(o for o in objectives if o.limit is not None)
        self.space = space
        self.objectives = tuple(objectives)
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.archs: list[Arch] = []
        self._rows: list[np.ndarray] = []
        self._violations: list[float] = []
        self._constraint_rows: list[np.ndarray] = []
        self._told: set[str] = set()
        self._pending: set[str] = set()

    # -- the contract ------------------------------------------------------------------
    def ask(self, n: int) -> list[Arch]:
        """Propose up to ``n`` archs that were neither told nor are still pending."""
        archs = self._propose(n)
        self._pending.update(a.key for a in archs)
        return archs

    def tell(self, archs: Sequence[Arch], metrics: Sequence[Metrics]) -> None:
        """Learn from results; ``None`` metrics mark an invalid arch (never preferred)."""
        new = []
        for arch, values in zip(archs, metrics, strict=True):
            self._pending.discard(arch.key)
            if arch.key in self._told:
                continue
            self._told.add(arch.key)
            self.archs.append(arch)
            row = self._objective_row(values)
            self._rows.append(row)
            self._constraint_rows.append(self._constraint_row(values))
            valid = np.isfinite(row).all()
            self._violations.append(
                float(np.maximum(self.excess(values), 0).sum()) if valid else np.inf
            )
            new.append(len(self.archs) - 1)
        if new:
            self._after_tell(new)

    @abstractmethod
    def _propose(self, n: int) -> list[Arch]:
        """Return up to ``n`` unseen archs (use ``is_new`` to check)."""

    def _after_tell(self, new: list[int]) -> None:  # noqa: B027 - optional hook
        """Called with archive indices of newly told archs."""

    # -- helpers for subclasses --------------------------------------------------------
    @property
    def F(self) -> np.ndarray:
        """Objective matrix of the archive (minimisation; +inf rows for invalid archs)."""
        if not self._rows:
            return np.zeros((0, len(self.objectives)))
        return np.vstack(self._rows)

    @property
    def C(self) -> np.ndarray:
        """Constraint metric matrix of the archive, in minimisation form (compare with
        ``constraint_limits``), for model-based searchers to learn from; NaN where a result
        lacks the metric or holds a non-finite value, and for ``None`` results."""
        if not self._constraint_rows:
            return np.zeros((0, len(self.constraints)))
        return np.vstack(self._constraint_rows)

    @property
    def violation(self) -> np.ndarray:
        """Constraint violation per archived arch: 0 feasible, >0 violating, inf invalid."""
        return np.asarray(self._violations, dtype=float)

    def is_new(self, arch: Arch) -> bool:
        return arch.key not in self._told and arch.key not in self._pending

    def _objective_row(self, values: Metrics) -> np.ndarray:
        """Objectives in minimisation form; all +inf for an invalid arch."""
        if values is None:
            return np.full(len(self.objectives), np.inf)
        row = np.array([o.to_min(float(values[o.name])) for o in self.objectives])
        return row if np.all(np.isfinite(row)) else np.full(len(self.objectives), np.inf)

    def excess(self, values: Mapping[str, float]) -> np.ndarray:
        """How far a valid result is past each limit (<= 0: within), in minimisation form:
        the constraints, then the limited objectives. A constraint metric the result lacks
        (or holds as NaN/inf) counts as ``MISSING_CONSTRAINT_VIOLATION`` past its limit."""
        constraints = self._constraint_row(values) - self.constraint_limits
        objectives = [o.to_min(float(values[o.name])) - o.to_min(o.limit) for o in self.limited]
        return np.concatenate([np.nan_to_num(constraints, nan=MISSING_CONSTRAINT_VIOLATION),
                               objectives])  # fmt: skip

    def _constraint_row(self, values: Metrics) -> np.ndarray:
        row = np.full(len(self.constraints), np.nan)
        if values is None:
            return row
        for j, c in enumerate(self.constraints):
            try:
                value = float(c.to_min(float(values[c.name])))
            except (KeyError, TypeError, ValueError):
                continue
            if np.isfinite(value):
                row[j] = value
        return row

    def best_first(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Order archive indices as NSGA-II survival does: feasibility, front, crowding."""
        indices = np.asarray(indices, dtype=int)
        if len(indices) == 0:
            return indices
        F, viol = self.F[indices], self.violation[indices]
        rank = np.full(len(indices), np.inf)
        crowd = np.zeros(len(indices))
        feasible = np.where(viol == 0)[0]
        for r, front in enumerate(non_dominated_sort(F[feasible])):
            members = feasible[front]
            rank[members] = r
            crowd[members] = crowding_distance(F[members])
        order = np.lexsort((-crowd, rank, viol))
        return indices[order]

    def fresh(
        self,
        n: int,
        make: Callable[[], Arch],
        max_tries: int | None = None,
        taken: Sequence[Arch] = (),
    ) -> list[Arch]:
        """Collect ``n`` distinct unseen archs from ``make`` (none of them in ``taken``),
        topping up with random samples.

        Duplicate elimination lives here so every searcher spends its budget on new archs.
        """
        out: dict[str, Arch] = {}
        excluded = {a.key for a in taken}
        tries = max_tries if max_tries is not None else 50 * n
        for _ in range(tries):
            if len(out) == n:
                break
            arch = make()
            if self.is_new(arch) and arch.key not in out and arch.key not in excluded:
                out[arch.key] = arch
        for _ in range(50 * n):
            if len(out) == n:
                break
            arch = self.space.sample(self.rng)
            if self.is_new(arch) and arch.key not in out and arch.key not in excluded:
                out[arch.key] = arch
        return list(out.values())
