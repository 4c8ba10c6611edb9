"""The command line: parse, validate, call the Python API, print. No logic of its own.

Every user error becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from hwnas.errors import HwnasError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False)
bench_app = typer.Typer(no_args_is_help=True, help="Compare searchers on tabular benchmarks.")
app.add_typer(bench_app, name="bench")

Searchers = Annotated[
    str,
    typer.Option(
        help="Comma-separated: random, nsga2, evolution, linas, optuna-tpe, optuna-nsga2."
    ),
]
Seeds = Annotated[int, typer.Option(min=1, help="Number of seeds (0..N-1) per searcher.")]
Budget = Annotated[int, typer.Option(min=1, help="Unique evaluations per run.")]
Out = Annotated[Path, typer.Option(help="Output folder (summary.json, curves.csv, curves.html).")]


def _split(text: str, what: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise HwnasError(f"--{what} is empty")
    return items


def _searchers(text: str) -> list[str]:
    from hwnas.search import SEARCHERS

    names = _split(text, "searchers")
    for name in names:
        if name not in SEARCHERS:
            raise HwnasError(
                f"--searchers: unknown searcher {name!r}; choose from {', '.join(SEARCHERS)}"
            )
    return names


def _compare(
    bench: Any, objectives: list, searchers: str, seeds: int, budget: int, out: Path
) -> None:
    from hwnas.benchmarks.compare import run_comparison
    from hwnas.console import RichProgress, print_summary

    names = _searchers(searchers)
    if out.exists() and not out.is_dir():
        raise HwnasError(f"--out {out}: exists and is not a folder")
    with RichProgress() as progress:
        summary = run_comparison(bench, objectives, names, range(seeds), budget, out, progress)
    print_summary(summary, out)


@bench_app.command("nb201")
def bench_nb201(
    data: Annotated[Path, typer.Option(help="Path to nb201_acc_latency.csv.gz.")],
    dataset: Annotated[str, typer.Option(help="cifar10, cifar100 or ImageNet16-120.")] = "cifar10",
    device: Annotated[str, typer.Option(help="Latency table, e.g. pixel3, raspi4.")] = "pixel3",
    searchers: Searchers = "random,nsga2,linas",
    seeds: Seeds = 10,
    budget: Budget = 500,
    out: Out = Path("runs/bench-nb201"),
) -> None:
    """NAS-Bench-201: accuracy (max) against a device's latency (min)."""
    from hwnas.benchmarks.nb201 import load_nb201
    from hwnas.pareto import Objective

    _searchers(searchers)
    bench = load_nb201(data, dataset, device)
    objectives = [Objective("accuracy", "max"), Objective("latency", "min")]
    _compare(bench, objectives, searchers, seeds, budget, out)


@bench_app.command("table")
def bench_table(
    file: Annotated[Path, typer.Argument(help="CSV (optionally .gz) with one row per arch.")],
    choices: Annotated[str, typer.Option(help="Comma-separated choice columns.")],
    objectives: Annotated[str, typer.Option(help="Comma-separated NAME:min|max, e.g. acc:max.")],
    searchers: Searchers = "random,nsga2,linas",
    seeds: Seeds = 10,
    budget: Budget = 500,
    out: Out = Path("runs/bench-table"),
) -> None:
    """Any table: the space is the product of the choice columns' values."""
    from hwnas.benchmarks.table import TableBenchmark
    from hwnas.pareto import Objective

    parsed = [Objective.parse(spec) for spec in _split(objectives, "objectives")]
    _searchers(searchers)
    bench = TableBenchmark.from_csv(file, _split(choices, "choices"), [o.name for o in parsed])
    _compare(bench, parsed, searchers, seeds, budget, out)


ConfigFile = Annotated[
    Path | None, typer.Option("--config", help="YAML config; omitted keys keep their defaults.")
]


@app.command("run")
def run_command(
    config: ConfigFile = None,
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("runs/main"),
    resume: Annotated[bool, typer.Option(help="Continue a killed run from its store.")] = False,
    latency: Annotated[
        str | None,
        typer.Option(help="measured, or profile:FILE (a profile from hwnas profile)."),
    ] = None,
    objective: Annotated[
        list[str] | None,
        typer.Option(help="NAME:min|max, repeatable; replaces the config's objectives."),
    ] = None,
    constraint: Annotated[
        list[str] | None,
        typer.Option(help="'NAME <= LIMIT' or '>=', on any metric; repeatable; replaces."),
    ] = None,
) -> None:
    """The main job: train the super-network, search it, export the chosen sub-networks."""
    from hwnas.config import load_config, with_overrides
    from hwnas.console import RichProgress, print_run
    from hwnas.run import run_job

    changes = {
        key: value
        for key, value in (
            ("latency.source", latency),
            ("search.objectives", objective),
            ("search.constraints", constraint),
        )
        if value is not None
    }
    settings = with_overrides(load_config(config), changes)
    with RichProgress() as progress:
        summary = run_job(settings, out, resume=resume, progress=progress)
    print_run(summary, out)


@app.command("profile")
def profile_command(
    out: Annotated[
        Path, typer.Option(help="Profile to write (PROFILE.json); with --check, a folder.")
    ],
    config: ConfigFile = None,
    check: Annotated[
        Path | None,
        typer.Option(help="Measure fresh sub-networks here and score this profile on them."),
    ] = None,
    samples: Annotated[
        int, typer.Option(min=10, help="Sub-networks measured to fit (or with --check, to test).")
    ] = 200,
    rounds: Annotated[
        int, typer.Option(min=1, help="Interleaved timing rounds per layer and sub-network.")
    ] = 5,
) -> None:
    """Profile this machine for the configured super-network: a per-layer latency lookup
    table and a predictor, in one JSON file usable anywhere with --latency profile:FILE."""
    from hwnas.console import RichProgress, print_profile

    if check is not None:
        if config is not None:
            raise HwnasError("--check takes the space from the profile; drop --config")
        from hwnas.profiling import check_job

        with RichProgress() as progress:
            result = check_job(check, samples, out, rounds, progress=progress)
        print_profile(result, out / "check.json")
        return
    from hwnas.config import load_config
    from hwnas.profiling import profile_job

    settings = load_config(config)
    with RichProgress() as progress:
        result = profile_job(settings, out, samples, rounds, progress)
    print_profile({**result, **result["validation"]}, out)


@app.command("train")
def train_command(
    config: ConfigFile = None,
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("runs/main"),
    resume: Annotated[bool, typer.Option(help="Continue from the checkpoint.")] = False,
) -> None:
    """Train the configured super-network only (sandwich rule, in-place distillation)."""
    from hwnas.config import load_config
    from hwnas.console import RichProgress, console
    from hwnas.run import train_job

    settings = load_config(config)
    with RichProgress() as progress:
        result = train_job(settings, out, resume=resume, progress=progress)
    last = result["training"][-1] if result["training"] else {}
    console.print(
        f"wrote {result['checkpoint']} after {result['seconds']:.0f}s"
        + (
            f"; last epoch loss {last['loss']:.3f}, train acc {last['train_accuracy']:.1f}%"
            if last
            else ""
        )
    )


def main(argv: list[str] | None = None) -> None:
    """Entry point: one-line errors and exit code 2 for anything the user can fix."""
    try:
        app(args=argv, prog_name="hwnas", standalone_mode=False)
    except HwnasError as exc:
        _fail(str(exc))
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        print("hwnas: interrupted; rerun the same command to resume", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:
        # Usage errors (bad option value, missing option) carry exit code 2 and a message.
        if getattr(exc, "exit_code", None) == 2 and hasattr(exc, "format_message"):
            _fail(exc.format_message())
        raise


def _fail(message: str) -> None:
    print(f"hwnas: error: {' '.join(message.split())}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
    main()
