"""Search your own problem in one call: named choices and a function that returns metrics.

    import hwnas

    def measure(arch):                      # {"width": 32, "op": "conv"} -> metrics
        return {"error": ..., "latency_ms": ...}

    result = hwnas.optimize(measure, {"width": [16, 32, 64], "op": ["conv", "mlp"]},
                            objectives=["error:min", "latency_ms:min"], budget=50,
                            out="runs/mine")
    result.front                            # best first; runs/mine/report.html

The study is the CLI's: every result is stored in ``out/run.sqlite`` as it arrives, so a
killed call continues with ``resume=True`` and evaluates nothing twice; ``summary.json``,
``front.csv`` and ``report.html`` are written as by ``hwnas run``.
"""

from __future__ import annotations

import shlex
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hwnas.errors import HwnasError
from hwnas.files import make_out, run_lock
from hwnas.pareto import Objective
from hwnas.progress import Progress, SilentProgress
from hwnas.results import front_of, knee_of, study_summary, write_results
from hwnas.search import make_searcher
from hwnas.space import Arch, Space, Value
from hwnas.store import Evaluation, Store
from hwnas.study import Study

RUN_ID = "optimize"
LABEL_CHARACTERS = 60


@dataclass(frozen=True)
class Result:
    """``evaluations`` in the order they were made; ``front`` best first objective first."""

    evaluations: list[Evaluation]
    front: list[Evaluation]
    knee: Evaluation
    summary: dict[str, Any]
    out: Path


class _Function:
    """A user's function as an evaluator: it gets the arch as a dict and must return a
    mapping of metric names to numbers, including every objective and constraint."""

    def __init__(self, function: Callable[[dict[str, Value | None]], Mapping[str, float]],
                 required: Sequence[str]) -> None:  # fmt: skip
        self.function = function
        self.required = tuple(required)
        self.metrics = self.required

    def evaluate(self, arch: Arch) -> dict[str, float]:
        returned = self.function(arch.to_dict())
        name = getattr(self.function, "__name__", "the function")
        if not isinstance(returned, Mapping):
            raise HwnasError(f"{name}({arch.key}) returned {type(returned).__name__}, "
                             "not a mapping of metric names to numbers")  # fmt: skip
        metrics = {}
        for key, value in returned.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise HwnasError(f"{name}({arch.key}): metric {key!r} is {value!r}, not a number")
            metrics[str(key)] = float(value)
        missing = [n for n in self.required if n not in metrics]
        if missing:
            raise HwnasError(f"{name}({arch.key}) returned no {missing[0]!r}; it returned "
                             f"{', '.join(metrics) or 'nothing'}")  # fmt: skip
        return metrics


def _label(arch: Mapping[str, Any]) -> str:
    text = " ".join(f"{k}={v}" for k, v in arch.items() if v is not None)
    return text if len(text) <= LABEL_CHARACTERS else text[: LABEL_CHARACTERS - 1] + "…"


def optimize(
    function: Callable[[dict[str, Value | None]], Mapping[str, float]],
    space: Space | Mapping[str, Sequence[Value]],
    objectives: Sequence[str | Objective],
    budget: int,
    out: str | Path,
    searcher: str = "linas",
    seed: int = 0,
    constraints: Sequence[str] = (),
    options: Mapping[str, Any] | None = None,
    resume: bool = False,
    progress: Progress | None = None,
) -> Result:
    """Search ``space`` for archs that ``function`` scores best on ``objectives``.

    ``objectives`` are ``"NAME:min"``/``"NAME:max"`` (optionally with a limit, as in the
    CLI); ``constraints`` are ``"NAME <= LIMIT"`` on other metrics the function returns.
    Raise ``hwnas.evaluate.base.InvalidArch`` from ``function`` for archs it cannot score.
    ``out`` must be new unless ``resume`` (then the same arguments are required).
    """
    from hwnas.config import SearchConfig, validated_section

    space = space if isinstance(space, Space) else Space.from_options(space)
    search = validated_section(SearchConfig, "optimize", {
        "objectives": [o.spec if isinstance(o, Objective) else o for o in objectives],
        "constraints": list(constraints), "budget": budget,
    })  # fmt: skip
    parsed, limits = search.parsed_objectives(()), search.parsed_constraints(())
    out = Path(out)
    with run_lock(out):  # one process at a time writes a study
        store_path = out / "run.sqlite"
        if store_path.exists() and not resume:
            raise HwnasError(f"{out} already holds a study; pass resume=True or pick another out")
        if resume and not store_path.exists():
            raise HwnasError(f"resume: {out} holds no study to resume")
        chosen = make_searcher(searcher, space, parsed, seed, options, constraints=limits)
        evaluator = _Function(function, [o.name for o in (*parsed, *limits)])
        make_out(out)
        started = time.perf_counter()
        settings = {
            "searcher": searcher,
            "seed": seed,
            "budget": budget,
            "options": dict(options or {}),
            "objectives": [f"{o.name}:{o.direction}" for o in parsed],
            "constraints": list(constraints),
        }
        with Store(store_path) as store:
            study = Study(space=space, evaluator=evaluator, objectives=parsed, searcher=chosen,
                          store=store, run_id=RUN_ID, budget=budget, config=settings,
                          progress=progress or SilentProgress())  # fmt: skip
            evaluations = study.optimize()
        seconds = time.perf_counter() - started
        front = front_of(evaluations, parsed, limits)
        if not front:
            raise HwnasError("optimize: no evaluated arch meets the limits; relax them")
        knee = knee_of(front, parsed)
        name = getattr(function, "__name__", "function")
        returned = dict.fromkeys(n for e in evaluations if e.metrics for n in e.metrics)
        summary = {
            **study_summary(
                title=f"hwnas.optimize: {name}, {searcher}",
                command=shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]) or "python",
                seed=seed,
                objectives=parsed,
                constraints=limits,
                metrics={
                    n: {"unit": "", "description": f"returned by {name}", "integer": False}
                    for n in returned
                },  # fmt: skip
                front=front,
                knee=knee,
                evaluations=len(evaluations),
                label=_label,
            ),
            "task": {"function": name, "space": space.name, "space_size": space.size()},
            "splits": {},
            "exported": {},
            "latency": {"source": f"returned by {name}"},
            "training": [],
            "time_seconds": {"search": seconds, "total": seconds},
            "searcher_seconds_per_candidate": study.seconds_per_candidate,
            "settings": settings,
        }
        write_results(out, summary, evaluations, _label)
        return Result(evaluations, front, knee, summary, out)
