"""Searchers: one registry, one file each. They import nothing that imports torch."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

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
    "optuna-gp": lambda *a, **k: OptunaSearch(*a, sampler="gp", **k),
}


class Option(NamedTuple):
    """A searcher option's type and bounds (``low`` excluded when ``open_low``; none for a
    ``bool``)."""

    kind: type
    low: float
    high: float
    open_low: bool = False


_POPULATION = Option(int, 2, 100_000)
OPTIONS: dict[str, dict[str, Option]] = {
    "random": {},
    "nsga2": {"population_size": _POPULATION, "crossover_eta": Option(float, 0, 1000, True),
              "mutation_eta": Option(float, 0, 1000, True)},
    "evolution": {"population_size": _POPULATION, "sample_size": Option(int, 1, 100_000)},
    "linas": {"initial": Option(int, 1, 100_000), "samples": Option(int, 1, 10_000),
              "screen": Option(int, 1, 10**6), "noise_after": Option(int, 0, 10**7),
              "exhaustive_limit": Option(int, 0, 10**6), "exhaustive_until": Option(int, 0, 10**7),
              "pool_size": Option(int, 1, 10**6), "reference_sample": Option(int, 1, 10**6),
              "reference_quantile": Option(float, 0, 1), "climb_steps": Option(int, 0, 100),
              "climb_starts": Option(int, 1, 10_000)},
    "optuna-tpe": {"max_retries": Option(int, 1, 10_000), "startup": Option(int, 1, 100_000)},
    "optuna-nsga2": {"population_size": _POPULATION, "max_retries": Option(int, 1, 10_000)},
    "optuna-gp": {"max_retries": Option(int, 1, 10_000), "startup": Option(int, 1, 100_000),
                  "deterministic": Option(bool, 0, 1)},
}  # fmt: skip
"""Each searcher's options (its constructor's keyword arguments), so a config's
``search.options`` is checked, names, types and bounds, before any data loads or training
starts. Bounds are generous: populations up to 1e5, candidate pools and samples up to 1e6
(each costs memory and predictor time per round), LINAS enumerates at most 1e6 archs."""


def check_options(name: str, options: Mapping[str, Any] | None) -> dict[str, Any]:
    """``options`` for searcher ``name``, each checked against ``OPTIONS``; a one-line
    ``HwnasError`` naming the searcher and option otherwise."""
    if name not in OPTIONS:
        raise HwnasError(f"unknown searcher {name!r}; choose from {', '.join(SEARCHERS)}")
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise HwnasError(f"searcher {name!r}: options must be a mapping of name to value")
    schema = OPTIONS[name]
    for key, value in options.items():
        if key not in schema:
            takes = ", ".join(schema) or "no options"
            raise HwnasError(f"searcher {name!r}: bad option {key!r} (it takes {takes})")
        option = schema[key]
        if option.kind is bool:
            if not isinstance(value, bool):
                raise HwnasError(f"searcher {name!r}: option {key}: expected true or false, "
                                 f"got {_short(value)}")  # fmt: skip
            continue
        kinds = (int,) if option.kind is int else (int, float)
        number = isinstance(value, kinds) and not isinstance(value, bool)
        low_ok = number and (value > option.low if option.open_low else value >= option.low)
        if not (number and math.isfinite(value) and low_ok and value <= option.high):
            what = "an integer" if option.kind is int else "a number"
            bracket = "(" if option.open_low else "["
            raise HwnasError(
                f"searcher {name!r}: option {key}: expected {what} in "
                f"{bracket}{option.low:g}, {option.high:g}], got {_short(value)}"
            )
    population = options.get("population_size", 50)
    if name == "evolution" and options.get("sample_size", 10) > population:
        raise HwnasError(
            f"searcher {name!r}: option sample_size: at most population_size ({population})"
        )
    return dict(options)


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


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
    options = check_options(name, options)
    return SEARCHERS[name](space, objectives, seed=seed, constraints=constraints, **options)


__all__ = ["OPTIONS", "SEARCHERS", "Searcher", "check_options", "make_searcher"]
