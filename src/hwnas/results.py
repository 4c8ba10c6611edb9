"""What every study leaves behind, whoever ran it (``hwnas run`` or ``hwnas.optimize``):
the front, ``summary.json``, ``front.csv`` and ``report.html``, written whole or not at all.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from hwnas import __version__
from hwnas.files import write_atomic
from hwnas.pareto import Objective, feasible_mask, knee_index, objective_matrix, pareto_mask
from hwnas.report.html import write_report
from hwnas.store import Evaluation

Label = Callable[[Mapping[str, Any]], str]


def front_of(
    evaluations: Sequence[Evaluation],
    objectives: Sequence[Objective],
    constraints: Sequence[Objective] = (),
) -> list[Evaluation]:
    """Valid evaluations within every limit that no other such evaluation dominates, best
    first objective first."""
    valid = [e for e in evaluations if e.metrics is not None]
    ok = feasible_mask([e.metrics for e in valid], [*objectives, *constraints]) if valid else []
    feasible = [e for e, keep in zip(valid, ok, strict=True) if keep]
    if not feasible:
        return []
    mask = pareto_mask(objective_matrix([e.metrics for e in feasible], objectives))
    front = [e for e, on in zip(feasible, mask, strict=True) if on]
    first = objectives[0]
    return sorted(front, key=lambda e: first.to_min(e.metrics[first.name]))


def knee_of(front: Sequence[Evaluation], objectives: Sequence[Objective]) -> Evaluation:
    return front[knee_index(objective_matrix([e.metrics for e in front], objectives))]


def study_summary(
    *,
    title: str,
    command: str,
    seed: int,
    objectives: Sequence[Objective],
    constraints: Sequence[Objective],
    metrics: Mapping[str, Mapping[str, Any]],
    front: Sequence[Evaluation],
    knee: Evaluation,
    evaluations: int,
    label: Label,
) -> dict[str, Any]:
    """The part of ``summary.json`` every study has; a run adds its task, training and
    exports. ``metrics`` gives each metric's ``unit``, ``description`` and ``integer``."""
    return {
        "hwnas_version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "command": command,
        "seed": seed,
        "title": title,
        "objectives": [asdict(o) for o in objectives],
        "constraints": [asdict(c) for c in constraints],
        "metrics": dict(metrics),
        "front": [
            {"key": e.arch_key, "label": label(e.arch), "arch": e.arch, "metrics": e.metrics}
            for e in front
        ],  # fmt: skip
        "knee": knee.arch_key,
        "evaluations": evaluations,
    }


def write_results(
    out, summary: Mapping[str, Any], evaluations: Sequence[Evaluation], label: Label
) -> None:
    """``summary.json``, ``front.csv`` and ``report.html`` in ``out``."""
    write_atomic(out / "summary.json", json.dumps(summary, indent=2))
    write_atomic(out / "front.csv", front_csv(summary))
    labelled = [{"key": e.arch_key, "label": label(e.arch), "metrics": e.metrics}
                for e in evaluations]  # fmt: skip
    write_report(out / "report.html", dict(summary), labelled)


def front_csv(summary: Mapping[str, Any]) -> str:
    """The front as CSV for scripts, in the summary's order (best first objective first):
    the short label, the knee and export flags, metrics (counts as integers), the key and
    the arch as JSON."""
    front = summary["front"]
    names = list(dict.fromkeys(n for e in front for n in e["metrics"]))
    integer = {n for n, m in summary["metrics"].items() if m.get("integer")}
    exports: dict[str, list[str]] = {}
    for label, info in summary.get("exported", {}).items():
        exports.setdefault(info["key"], []).append(label)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["label", "knee", "exported", *names, "key", "arch"])
    for e in front:
        values = [_cell(e["metrics"].get(n), n in integer) for n in names]
        writer.writerow([e["label"], int(e["key"] == summary["knee"]),
                         " ".join(exports.get(e["key"], [])), *values, e["key"],
                         json.dumps(e["arch"])])  # fmt: skip
    return buffer.getvalue()


def _cell(value: float | None, integer: bool) -> Any:
    if value is None:
        return ""
    return int(value) if integer and float(value).is_integer() else value
