"""Searchers: one registry, one file each. They import nothing that imports torch."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from hwnas.errors import HwnasError
from hwnas.pareto import Objective
from hwnas.search.base import Searcher
from hwnas.search.evolution import RegularizedEvolution
from hwnas.search.linas import LINAS
from hwnas.search.nsga2 import NSGA2
from hwnas.search.optuna_adapter import OptunaSearch
from hwnas.search.random import RandomSearch
from hwnas.space import Space

SEARCHERS: dict[str, Callable[..., Searcher]] = {
    "random": RandomSearch,
    "nsga2": NSGA2,
    "evolution": RegularizedEvolution,
    "linas": LINAS,
    "optuna-tpe": lambda *a, **k: OptunaSearch(*a, sampler="tpe", **k),
    "optuna-nsga2": lambda *a, **k: OptunaSearch(*a, sampler="nsga2", **k),
}


def make_searcher(
    name: str,
    space: Space,
    objectives: Sequence[Objective],
    seed: int = 0,
    options: Mapping[str, Any] | None = None,
    constraints: Sequence[Objective] = (),
) -> Searcher:
    """Build searcher ``name``; ``options`` are its constructor's keyword arguments.

    ``constraints`` limit metrics that are not objectives (each needs a ``limit``)."""
    for constraint in constraints:
        if constraint.limit is None or not math.isfinite(constraint.limit):
            raise HwnasError(f"constraint {constraint.name!r} has no limit (a finite number)")
    try:
        factory = SEARCHERS[name]
    except KeyError:
        raise HwnasError(f"unknown searcher {name!r}; choose from {', '.join(SEARCHERS)}") from None
    try:
        return factory(space, objectives, seed=seed, constraints=constraints, **(options or {}))
    except TypeError as exc:
        raise HwnasError(f"searcher {name!r}: bad option ({exc})") from None


__all__ = ["SEARCHERS", "Searcher", "make_searcher"]
