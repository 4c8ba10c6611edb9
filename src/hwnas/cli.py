"""The command line: parse, validate, call the Python API, print. No logic of its own.

Every user error becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from hwnas import __version__
from hwnas.errors import HwnasError

HELP = """Hardware-aware neural architecture search: train one elastic super-network,
search its sub-networks for quality against measured latency (and any other metric),
export the chosen ones as ONNX models with a report.

\b
Examples:
  hwnas run --config examples/lm.yaml --out runs/demo   # the demo job
  hwnas run --searcher nsga2 --budget 200 --seed 1 --out runs/digits
  hwnas run --objective accuracy:max --objective peak_memory_kb:min \\
            --constraint 'latency_ms <= 2'
  hwnas config show > my.yaml           # every setting, with its default
  hwnas metrics --data python           # the names objectives may use
  hwnas profile create --out pi4.json   # on the device; then anywhere:
  hwnas run --latency profile:pi4.json
  hwnas profile check pi4.json --out check/
  hwnas train --dense --config lm.yaml --out runs/dense   # a dense model, then:
  hwnas instatune --model runs/dense/supernet.safetensors --config lm.yaml
  hwnas bench nb201 --data nb201_acc_latency.csv.gz --device pixel3
  hwnas bench proxies --data zc_nasbench201.json.gz --dataset cifar10
  hwnas run --workers 2                 # evaluate on two local processes
  hwnas worker --scheduler tcp://HOST:8786 --device pi4   # on the Pi; the run:
  hwnas run --scheduler tcp://HOST:8786 --config pi4.yaml # latency: {device: pi4}
"""

CONTEXT = {"help_option_names": ["-h", "--help"]}
app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings=CONTEXT,
    help=HELP,
    rich_markup_mode=None,
)
bench_app = typer.Typer(no_args_is_help=True, help="Compare searchers on tabular benchmarks.")
app.add_typer(bench_app, name="bench")
profile_app = typer.Typer(
    no_args_is_help=True,
    help="Device profiles: a per-layer latency table and a predictor, usable anywhere with "
    "hwnas run --latency profile:FILE.",
)
app.add_typer(profile_app, name="profile")
config_app = typer.Typer(no_args_is_help=True, help="Run configs.")
app.add_typer(config_app, name="config")


def _version(value: bool) -> None:
    if value:
        print(f"hwnas {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Hardware-aware neural architecture search (``hwnas -h`` lists the commands)."""


def _command_line(ctx: typer.Context) -> str | None:
    """How this run was started (``main`` records it), for its summary and report."""
    return (ctx.obj or {}).get("command")


Searchers = Annotated[
    str,
    typer.Option(
        help="Comma-separated: random, nsga2, evolution, linas, optuna-tpe, optuna-nsga2, "
        "optuna-gp."
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
    objective: Annotated[
        list[str] | None,
        typer.Option(
            help="NAME:min|max, repeatable, of accuracy, latency and params "
            "(the network's weights); default accuracy:max and latency:min."
        ),
    ] = None,
    proxy_cache: Annotated[
        list[Path] | None,
        typer.Option(
            help="Folder of zero-cost proxy scores from bench/proxy_cache.py, repeatable (its "
            "parts); the proxies become extra predictor features (LINAS uses them)."
        ),
    ] = None,
) -> None:
    """NAS-Bench-201: accuracy (max) against a device's latency (min), or any of accuracy,
    latency and params."""
    from hwnas.benchmarks.nb201 import METRICS, load_nb201
    from hwnas.benchmarks.proxies import proxy_features
    from hwnas.pareto import Objective

    parsed = [Objective.parse(spec) for spec in objective or ("accuracy:max", "latency:min")]
    for o in parsed:
        if o.name not in METRICS:
            raise HwnasError(f"--objective {o.name!r}: not a metric of NAS-Bench-201; "
                             f"choose from {', '.join(METRICS)}")  # fmt: skip
    _searchers(searchers)
    features = proxy_features(proxy_cache) if proxy_cache else None
    bench = load_nb201(data, dataset, device, features)
    _compare(bench, parsed, searchers, seeds, budget, out)


@bench_app.command("proxies")
def bench_proxies(
    data: Annotated[
        Path, typer.Option(help="Path to NAS-Bench-Suite-Zero's zc_nasbench201.json.gz.")
    ],
    dataset: Annotated[str, typer.Option(help="cifar10, cifar100 or ImageNet16-120.")] = "cifar10",
    out: Annotated[Path, typer.Option(help="Output folder (summary.json, scores.jsonl).")] = Path(
        "runs/bench-proxies"
    ),
    proxies: Annotated[str, typer.Option(help="Comma-separated; default every proxy.")] = "",
    images: Annotated[
        str, typer.Option(help="Images for the data proxies' minibatch: digits or cifar10.")
    ] = "digits",
    images_path: Annotated[
        str | None, typer.Option(help="Folder of the CIFAR-10 python batches.")
    ] = None,
    batch_size: Annotated[int, typer.Option(min=2, max=4096)] = 64,
    cells: Annotated[
        int | None, typer.Option(min=3, help="Score an even spread of this many cells only.")
    ] = None,
    seed: Annotated[int, typer.Option(min=0, max=2**32 - 1)] = 0,
) -> None:
    """Zero-cost proxies of NAS-Bench-201 cells against the published scores and accuracy:
    per proxy, Spearman's rho with NAS-Bench-Suite-Zero's score and with validation
    accuracy, in OUT/summary.json. An interrupted run continues from OUT/scores.jsonl."""
    from hwnas.benchmarks.proxies import validate_proxies
    from hwnas.console import RichProgress, print_proxy_summary

    if images not in ("digits", "cifar10"):
        raise HwnasError(f"--images {images!r}: choose digits or cifar10")
    names = _split(proxies, "proxies") if proxies else None
    with RichProgress() as progress:
        summary = validate_proxies(data, dataset, out, names, images, images_path, batch_size,
                                   cells, seed, progress)  # fmt: skip
    print_proxy_summary(summary, out)


@bench_app.command("chain")
def bench_chain(
    layers: Annotated[int, typer.Option(min=2, max=64, help="Layers, each choosing a width.")] = 18,
    widths: Annotated[int, typer.Option(min=2, max=32, help="Widths per layer.")] = 8,
    problem_seed: Annotated[int, typer.Option(help="Draws the problem, not the search.")] = 0,
    searchers: Searchers = "random,nsga2,linas",
    seeds: Seeds = 10,
    budget: Budget = 500,
    out: Out = Path("runs/bench-chain"),
) -> None:
    """A generated space of widths ** layers archs (8 ** 18 = 1.8e16 by default), too large
    to list, whose true front is known exactly: accuracy with diminishing returns and
    interactions between neighbouring layers, latency from each layer's input and output
    widths."""
    from hwnas.benchmarks.chain import ChainBenchmark
    from hwnas.pareto import Objective

    _searchers(searchers)
    bench = ChainBenchmark(layers, widths, problem_seed)
    objectives = [Objective("accuracy", "max"), Objective("latency", "min")]
    _compare(bench, objectives, searchers, seeds, budget, out)


@bench_app.command("table")
def bench_table(
    file: Annotated[Path, typer.Argument(help="CSV (optionally .gz) with one row per arch.")],
    choices: Annotated[str, typer.Option(help="Comma-separated choice columns.")],
    objective: Annotated[
        list[str], typer.Option(help="NAME:min|max for a column, repeatable, e.g. acc:max.")
    ],
    searchers: Searchers = "random,nsga2,linas",
    seeds: Seeds = 10,
    budget: Budget = 500,
    out: Out = Path("runs/bench-table"),
) -> None:
    """Any table: the space is the product of the choice columns' values."""
    from hwnas.benchmarks.table import TableBenchmark
    from hwnas.pareto import Objective

    parsed = [Objective.parse(spec) for spec in objective]
    _searchers(searchers)
    bench = TableBenchmark.from_csv(file, _split(choices, "choices"), [o.name for o in parsed])
    _compare(bench, parsed, searchers, seeds, budget, out)


ConfigFile = Annotated[
    Path | None, typer.Option("--config", help="YAML config; omitted keys keep their defaults.")
]
ObjectiveOption = Annotated[
    list[str] | None,
    typer.Option(
        "--objective",
        help="NAME:min|max[<=|>=LIMIT], repeatable; replaces the config's objectives. "
        "hwnas metrics lists the names.",
    ),
]
ConstraintOption = Annotated[
    list[str] | None,
    typer.Option(
        "--constraint", help="'NAME <= LIMIT' or '>=', on any metric; repeatable; replaces."
    ),
]


WorkersOption = Annotated[
    int | None,
    typer.Option(min=1, max=4096, help="Evaluate on N local worker processes (default 1)."),
]
SchedulerOption = Annotated[
    str | None,
    typer.Option(help="Evaluate on the Dask cluster at tcp://HOST:PORT (workers: hwnas worker)."),
]


def _settings(config: Path | None, changes: dict[str, Any]):
    """The config file with command-line options laid over it (validated again)."""
    from hwnas.config import load_config, with_overrides

    return with_overrides(load_config(config), {k: v for k, v in changes.items() if v is not None})


@app.command("run")
def run_command(
    ctx: typer.Context,
    config: ConfigFile = None,
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("runs/main"),
    resume: Annotated[bool, typer.Option(help="Continue a killed run from its store.")] = False,
    searcher: Annotated[
        str | None, typer.Option(help="linas, nsga2, evolution, random, optuna-tpe, ...")
    ] = None,
    budget: Annotated[int | None, typer.Option(help="Sub-networks to evaluate.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of everything random.")] = None,
    epochs: Annotated[int | None, typer.Option(help="Super-network training epochs.")] = None,
    latency: Annotated[
        str | None,
        typer.Option(help="measured, or profile:FILE (a profile from hwnas profile create)."),
    ] = None,
    objective: ObjectiveOption = None,
    constraint: ConstraintOption = None,
    workers: WorkersOption = None,
    scheduler: SchedulerOption = None,
) -> None:
    """The main job: train the super-network, search it, export the chosen sub-networks.

    Writes OUT/summary.json, front.csv, report.html, models/*.onnx (+ .json) and run.sqlite.
    """
    from hwnas.console import RichProgress, print_run
    from hwnas.run import run_job

    settings = _settings(config, {
        "search.searcher": searcher, "search.budget": budget, "seed": seed,
        "train.epochs": epochs, "latency.source": latency, "search.objectives": objective,
        "search.constraints": constraint, "execution.workers": workers,
        "execution.scheduler": scheduler,
    })  # fmt: skip
    with RichProgress() as progress:
        summary = run_job(settings, out, resume, progress, command=_command_line(ctx))
    print_run(summary, out)


@app.command("oneshot")
def oneshot_command(
    ctx: typer.Context,
    config: ConfigFile = None,
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("runs/oneshot"),
    method: Annotated[str | None, typer.Option(help="darts, pc-darts or fbnet.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of everything random.")] = None,
    epochs: Annotated[int | None, typer.Option(help="Search epochs.")] = None,
    table: Annotated[
        str | None, typer.Option(help="NAS-Bench-201 table to look derived cells up in.")
    ] = None,
) -> None:
    """Gradient one-shot search: DARTS or PC-DARTS over the NAS-Bench-201 cell space (derive
    cells by argmax and perturbation), or FBNet over the MobileNet against a device profile's
    latency (oneshot.profile, oneshot.latency_target_ms); retrain and export the result.

    Writes OUT/oneshot.json, run.sqlite and models/<selection>.onnx (+ .json).
    """
    from hwnas.console import RichProgress, print_oneshot
    from hwnas.oneshot.pipeline import run_oneshot

    settings = _settings(config, {"oneshot.method": method, "seed": seed,
                                  "oneshot.epochs": epochs, "oneshot.table": table})  # fmt: skip
    with RichProgress() as progress:
        summary = run_oneshot(settings, out, progress, command=_command_line(ctx))
    print_oneshot(summary, out)


@app.command("instatune")
def instatune_command(
    ctx: typer.Context,
    model: Annotated[
        Path,
        typer.Option(
            help="Dense model: a checkpoint of hwnas train --dense, or a pretrained model "
            "folder its family reads (a Hugging Face LLaMA folder for supernet llama)."
        ),
    ],
    config: ConfigFile = None,
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("runs/instatune"),
    resume: Annotated[bool, typer.Option(help="Continue a killed run from its store.")] = False,
    budget: Annotated[int | None, typer.Option(help="Sub-networks to evaluate.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of everything random.")] = None,
    epochs: Annotated[int | None, typer.Option(help="Fine-tuning epochs.")] = None,
    workers: WorkersOption = None,
    scheduler: SchedulerOption = None,
) -> None:
    """Make a trained dense model elastic while fine-tuning it (InstaTune), then search and
    export as hwnas run does: heads, neurons and channels sorted by their activations on
    calibration data, every sub-network distilled from the frozen dense model.

    Writes what hwnas run writes; summary.json says where the super-network came from.
    """
    from hwnas.console import RichProgress, print_run
    from hwnas.run import run_job

    settings = _settings(config, {
        "search.budget": budget, "seed": seed, "train.epochs": epochs,
        "execution.workers": workers, "execution.scheduler": scheduler,
    })  # fmt: skip
    with RichProgress() as progress:
        summary = run_job(settings, out, resume, progress, command=_command_line(ctx),
                          dense=model)  # fmt: skip
    print_run(summary, out)


@app.command("train")
def train_command(
    config: ConfigFile = None,
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("runs/main"),
    resume: Annotated[bool, typer.Option(help="Continue from the checkpoint.")] = False,
    seed: Annotated[int | None, typer.Option(help="Seed of everything random.")] = None,
    epochs: Annotated[int | None, typer.Option(help="Training epochs.")] = None,
    dense: Annotated[
        bool, typer.Option(help="Train the largest network alone (for hwnas instatune).")
    ] = False,
) -> None:
    """Train the configured super-network only (sandwich rule, in-place distillation);
    hwnas run --out on the same folder then searches it without training again. With
    --dense, the largest network alone: a dense model for hwnas instatune --model."""
    from hwnas.console import RichProgress, console
    from hwnas.run import train_job

    settings = _settings(config, {"seed": seed, "train.epochs": epochs,
                                  "train.dense": dense or None})  # fmt: skip
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


Samples = Annotated[
    int,
    typer.Option(min=10, max=100_000, help="Sub-networks measured (to fit, or to check)."),
]
Rounds = Annotated[
    int, typer.Option(min=1, max=100, help="Interleaved timing rounds per layer and arch.")
]


@profile_app.command("create")
def profile_create(
    out: Annotated[Path, typer.Option(help="Profile to write (PROFILE.json).")],
    config: ConfigFile = None,
    samples: Samples = 200,
    rounds: Rounds = 5,
) -> None:
    """Profile this machine for the configured super-network: time every layer it can run
    and fit a predictor on measured sub-networks, into one JSON file."""
    from hwnas.config import load_config
    from hwnas.console import RichProgress, print_profile
    from hwnas.profiling import profile_job

    settings = load_config(config)
    with RichProgress() as progress:
        result = profile_job(settings, out, samples, rounds, progress)
    print_profile({**result, **result["validation"]}, out)


@profile_app.command("check")
def profile_check(
    profile: Annotated[Path, typer.Argument(help="A profile from hwnas profile create.")],
    out: Annotated[Path, typer.Option(help="Folder for check.json.")],
    samples: Samples = 200,
    rounds: Rounds = 5,
) -> None:
    """Measure fresh sub-networks here and score the profile's estimates on them (the
    space comes from the profile)."""
    from hwnas.console import RichProgress, print_profile
    from hwnas.profiling import check_job

    with RichProgress() as progress:
        result = check_job(profile, samples, out, rounds, progress=progress)
    print_profile(result, out / "check.json")


@config_app.command("show")
def config_show(config: ConfigFile = None) -> None:
    """Print every setting as YAML: the defaults, or FILE's values laid over them."""
    import yaml

    from hwnas.config import load_config

    raw = load_config(config).model_dump(mode="json")
    print(yaml.safe_dump(raw, sort_keys=False), end="")


@app.command("worker")
def worker_command(
    scheduler: Annotated[str, typer.Option(help="The run's Dask scheduler, tcp://HOST:PORT.")],
    device: Annotated[
        str | None,
        typer.Option(help="Take only the latency jobs of this device (latency.device NAME)."),
    ] = None,
    name: Annotated[str | None, typer.Option(help="How the store names this worker.")] = None,
) -> None:
    """Serve a run's evaluations from this machine until stopped (Ctrl-C): with --device,
    only the latency jobs meant for that device, timed with nothing else running here;
    without, every other job. Needs hwnas installed and the run's data paths valid here."""
    from hwnas.execute.dask import serve

    serve(scheduler, device, name)


@app.command("metrics")
def metrics_command(
    data: Annotated[str, typer.Option(help="digits, cifar10, image-folder or python.")] = "digits",
    latency: Annotated[str, typer.Option(help="measured or profile:FILE.")] = "measured",
) -> None:
    """The metrics a run records for a data set: the names objectives and constraints use."""
    from hwnas.config import validated
    from hwnas.console import print_metrics
    from hwnas.run import described_metrics

    settings = validated({"data": {"name": data}, "latency": {"source": latency}})
    print_metrics(described_metrics(settings))


def main(argv: list[str] | None = None) -> None:
    """Entry point: one-line errors and exit code 2 for anything the user can fix."""
    try:
        args = sys.argv[1:] if argv is None else [str(a) for a in argv]
        command = shlex.join(["hwnas", *args])
        app(args=args, prog_name="hwnas", standalone_mode=False, obj={"command": command})
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
