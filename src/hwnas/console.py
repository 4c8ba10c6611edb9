"""Terminal presentation for the CLI: progress bars and summary tables (rich)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as _RichBars
from rich.table import Table

from hwnas.report.format import metric_formats

console = Console(stderr=True)


class _Task:
    def __init__(self, bars: _RichBars, task_id: Any, transient: bool) -> None:
        self._bars, self._id, self._transient = bars, task_id, transient

    def advance(self, n: int = 1, **fields: Any) -> None:
        self._bars.update(self._id, advance=n, **fields)

    def close(self) -> None:
        if self._transient:
            self._bars.remove_task(self._id)


class RichProgress:
    """Implements ``hwnas.progress.Progress`` with rich bars; inner tasks vanish when done.

    The display starts with the first task, so an error found while inputs are checked (before
    any work) leaves its one line on stderr and nothing else."""

    def __init__(self) -> None:
        self._bars = _RichBars(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        )
        self._depth = 0
        self._shown = False

    def __enter__(self) -> RichProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._shown:
            self._bars.__exit__(*exc)

    def task(self, description: str, total: int | None) -> _Task:
        if not self._shown:
            self._bars.__enter__()
            self._shown = True
        self._depth += 1
        return _Task(self._bars, self._bars.add_task(description, total=total), self._depth > 1)


def print_summary(summary: dict, out: Path) -> None:
    marks = [
        k.split("@")[1]
        for k in next(iter(summary["searchers"].values()))
        if k.startswith("hv_ratio@")
    ]
    table = Table(
        title=f"{summary['benchmark']}: hypervolume ratio (mean over {len(summary['seeds'])} seeds)"
    )
    table.add_column("searcher")
    for mark in marks:
        table.add_column(f"@{mark}", justify="right")
    for label in ("evals to 95%", "evals to 99%", "front found", "s/candidate"):
        table.add_column(label, justify="right")
    for name, entry in summary["searchers"].items():
        reach = [
            "-" if entry[key] is None else f"{entry[key]:.0f}"
            for key in ("evals_to_95", "evals_to_99")
        ]
        table.add_row(
            name,
            *[f"{entry[f'hv_ratio@{m}']:.3f}" for m in marks],
            *reach,
            f"{entry['pareto_fraction']:.0%}",
            f"{entry['seconds_per_candidate']:.4f}",
        )
    Console().print(table)
    console.print(f"wrote {out}/summary.json, curves.csv, curves.html")


def print_proxy_summary(summary: dict, out: Path) -> None:
    def rho(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    table = Table(title=f"zero-cost proxies on {summary['cells']} NAS-Bench-201 cells "
                        f"({summary['dataset']}; data proxies on {summary['images']})")  # fmt: skip
    for label in ("proxy", "uses data", "rho vs published", "rho vs accuracy",
                  "published's rho vs accuracy", "s/cell", "undefined"):  # fmt: skip
        table.add_column(label, justify="left" if label == "proxy" else "right")
    for name, entry in summary["proxies"].items():
        table.add_row(name, "yes" if entry["uses_data"] else "no",
                      rho(entry["spearman_with_published"]), rho(entry["spearman_with_accuracy"]),
                      rho(entry["published_spearman_with_accuracy"]),
                      f"{entry['seconds_per_cell']:.3f}", str(entry["undefined"]))  # fmt: skip
    Console().print(table)
    console.print(f"wrote {out}/summary.json, scores.jsonl")


def print_run(summary: dict, out: Path) -> None:
    """The front (best first objective first), what was exported, and where the time went."""
    limited = [o["name"] for o in summary["objectives"] + summary["constraints"]]
    names = list(dict.fromkeys([*limited, "macs", "peak_memory_kb"]))  # the rest: front.csv
    formats = metric_formats(summary["metrics"], [e["metrics"] for e in summary["front"]])
    table = Table(
        title=f"Pareto front ({len(summary['front'])} of {summary['evaluations']} evaluated)",
        caption="* the knee; full arch keys in front.csv and report.html",
    )
    table.add_column("", width=1)
    table.add_column("arch")
    for name in names:
        unit = formats[name].unit
        table.add_column(f"{name} ({unit})" if unit else name, justify="right")
    for entry in summary["front"]:
        mark = "*" if entry["key"] == summary["knee"] else ""
        table.add_row(
            mark, entry["label"], *(formats[n].number(entry["metrics"][n]) for n in names)
        )
    Console().print(table)
    for label, info in summary["exported"].items():
        test = ", ".join(f"{name} {value:.4g}" for name, value in info["test"].items())
        if "max_abs_diff" in info:
            checked = f"vs PyTorch {info['max_abs_diff']:.1e}"
        else:  # quantized: its validation quality again, against the search's
            checked = "quantized, validation as searched"
        console.print(
            f"exported {label}: {out / info['onnx']} ({info['exported_latency_ms']:.3f} ms as "
            f"a file; {checked}; test split: {test})"
        )
    times = ", ".join(f"{k} {v:.1f}s" for k, v in summary["time_seconds"].items())
    console.print(f"time: {times}")
    console.print(f"wrote {out}/summary.json, front.csv, report.html, run.sqlite")


def print_oneshot(summary: dict, out: Path) -> None:
    """Each derived sub-network with its measured metrics and its file; a DARTS cell with its
    skip connections and table look-up, an FBNet result with the latency asked for and the
    profile's estimate beside the measured one."""
    fbnet = summary["method"] == "fbnet"
    extra = ("target (ms)", "profile (ms)", "off target") if fbnet else ("skips", "table acc. (%)")
    table = Table(title=f"{summary['method']}: derived sub-networks (seed {summary['seed']})")
    for column in ("selection", "sub-network", "accuracy (%)", "latency (ms)", *extra, "file"):
        table.add_column(
            column, justify="left" if column in ("selection", "sub-network") else "right"
        )
    for selection, found in summary["derived"].items():
        metrics = found["metrics"]
        if fbnet:
            cells = (f"{found['latency_target_ms']:.3f}", f"{found['profile_estimate_ms']:.3f}",
                     f"{found['target_error_pct']:+.1f}%")  # fmt: skip
        else:
            looked_up = metrics.get("table_accuracy")
            cells = (str(found["skip_connections"]),
                     "-" if looked_up is None else f"{looked_up:.2f}")  # fmt: skip
        table.add_row(selection, found["label"], f"{metrics['accuracy']:.2f}",
                      f"{metrics['latency_ms']:.3f}", *cells,
                      str(out / found["exported"]["onnx"]))  # fmt: skip
    Console().print(table)
    times = ", ".join(f"{k} {v:.1f}s" for k, v in summary["time_seconds"].items())
    console.print(f"time: {times}; details in {out / 'oneshot.json'}")


def print_metrics(described: dict[str, dict[str, Any]]) -> None:
    """Metric names with units: what objectives and constraints may name."""
    table = Table(title="metrics a run records (objectives and constraints name them)")
    for column in ("name", "unit", "meaning"):
        table.add_column(column)
    for name, info in described.items():
        split = " (validation split)" if info.get("split") == "val" else ""
        table.add_row(name, info["unit"], info["description"] + split)
    Console().print(table)


def print_profile(result: dict, written: Path) -> None:
    """How well the profile's table and predictor match measured sub-networks: in a check,
    also after recalibrating to the machine's speed now, and relative to the reference."""
    table = Table(title=f"latency estimates vs measured ({result['table']['n']} sub-networks)")
    for column in ("estimate", "within +/-10%", "MAPE", "Kendall tau"):
        table.add_column(column, justify="right")
    rows = {
        "table": "table",
        "predictor": "predictor",
        "predictor_recalibrated": "predictor, recalibrated",
        "predictor_relative": "predictor, relative to the reference",
    }
    for name, label in rows.items():
        if name in result:
            f = result[name]
            table.add_row(label, f"{f['within_10pct']:.1%}", f"{f['mape_pct']:.1f}%",
                          f"{f['kendall_tau']:.3f}")  # fmt: skip
    Console().print(table)
    if result.get("same_device") is False:
        console.print("note: this machine differs from the profiled device; expect a gap")
    elif "speed_drift" in result:
        console.print(
            f"this machine runs {result['speed_drift']:+.1%} slower than when profiled "
            "(the reference, the largest sub-network)"
        )
    if "reference" in result:
        r = result["reference"]
        console.print(
            f"reference (largest sub-network): {r['ms']:.3f} ms; the machine's speed moved by "
            f"{r['spread']:.1%} (p90/p10) while profiling, divided out"
        )
    if "layers" in result:
        console.print(f"table: {result['layers']} layers at {', '.join(result['precisions'])}")
    console.print(f"wrote {written} in {result['seconds']:.0f}s")
