"""How evaluation scales with workers on this machine (issue 12, point 8).

    .venv/bin/python bench/scaling.py table \
        --data ../shared/benchmarks/nb201/nb201_acc_latency.csv.gz --delay 0.25 --budget 96
    .venv/bin/hwnas train --config examples/lm.yaml --epochs 2 --out runs/bench-scaling/trained
    .venv/bin/python bench/scaling.py main --config examples/lm.yaml --epochs 2 \
        --checkpoint runs/bench-scaling/trained/supernet.safetensors --budget 40

``table``: NAS-Bench-201 (cifar10 x pixel3) where each evaluation also sleeps ``--delay``
seconds, standing in for real work, searched by each of ``--searchers`` in this process
(the serial executor) and on 1, 2 and 4 workers of each pool (the standard library's
process pool, a local Dask cluster). Per-job overhead is the wall time beyond the ideal
``budget x delay / workers``, per job, worker start-up included.

``main``: the main job's search alone on a trained super-network (``--checkpoint`` is
copied into a fresh run folder, so training is skipped), on 1, 2 and 4 worker processes
against the serial executor. Here every evaluation uses a core (accuracy, then latency
timed with one thread); more workers than cores are skipped, since hwnas refuses to time
latency on them (the 4-worker figure in docs/benchmarks.md was measured before it did).

Prints one JSON line per run and writes ``OUT/scaling-KIND.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

from hwnas.benchmarks.nb201 import worker_evaluators
from hwnas.execute import SerialExecutor, Workload, make_executor
from hwnas.pareto import Objective
from hwnas.search import make_searcher
from hwnas.store import Store
from hwnas.study import Study

OBJECTIVES = [Objective("accuracy", "max"), Objective("latency", "min")]


def _table_run(args: argparse.Namespace, searcher: str, pool: str | None, workers: int) -> dict:
    context = {"path": str(args.data), "delay_s": args.delay}
    workload = Workload("nb201", context)
    here = worker_evaluators(context)
    started = time.time()  # a local Dask cluster starts in make_executor: counted
    if pool is None:
        executor = SerialExecutor(here.space, here.evaluators)
    else:
        executor = make_executor(workload, workers, kind=pool)
    path = args.out / f"table-{searcher}-{pool}-{workers}.sqlite"
    path.unlink(missing_ok=True)
    try:
        with Store(path) as store:
            study = Study(space=here.space, executor=executor,
                          objectives=OBJECTIVES, store=store, run_id="r", budget=args.budget,
                          searcher=make_searcher(searcher, here.space, OBJECTIVES, 0))  # fmt: skip
            done = study.optimize()
    finally:
        executor.close()
    wall = time.time() - started
    startup = min(e.started_at for e in done) - started  # workers spawned, table read
    ideal = args.budget * args.delay / workers
    return {
        "searcher": searcher,
        "pool": pool or "serial",
        "workers": workers,
        "wall_s": wall,
        "startup_s": startup,
        "steady_s": wall - startup,
        "ideal_s": ideal,
        "overhead_per_job_s": (wall - startup - ideal) * workers / args.budget,
        "searcher_s": study.searcher_seconds,
        "evaluations": len(done),
        "told": [a.key for a in study.searcher.archs],
    }


def table(args: argparse.Namespace) -> list[dict]:
    results = []
    for searcher in args.searchers.split(","):
        runs = [(None, 1)] + [(pool, n) for pool in ("process", "dask") for n in args.workers]
        for pool, workers in runs:
            result = _table_run(args, searcher, pool, workers)
            serial = next((r for r in results if r["searcher"] == searcher), result)
            result["speedup"] = serial["wall_s"] / result["wall_s"]
            result["steady_speedup"] = serial["steady_s"] / result["steady_s"]
            same = [r for r in results if r["searcher"] == searcher and r["workers"] == workers]
            result["same_as_other_pool"] = same[-1]["told"] == result["told"] if same else None
            results.append(result)
            print(json.dumps({k: v for k, v in result.items() if k != "told"}), flush=True)
    return results


def main_job(args: argparse.Namespace) -> list[dict]:
    from hwnas.config import load_config, with_overrides
    from hwnas.families.checkpoint import optimizer_path
    from hwnas.run import CHECKPOINT, run_job

    results = []
    for workers in [1, *(n for n in args.workers if n > 1)]:  # 1: the serial executor
        if workers > (os.cpu_count() or 1):  # refused: latency timed on shared cores is wrong
            print(json.dumps({"workers": workers, "skipped": "more workers than cores"}))
            continue
        out = args.out / f"main-{workers}"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        shutil.copy(args.checkpoint, out / CHECKPOINT)
        shutil.copy(optimizer_path(args.checkpoint), optimizer_path(out / CHECKPOINT))
        changes = {"search.budget": args.budget, "execution.workers": workers}
        if args.epochs is not None:  # as the checkpoint was trained (hwnas train --epochs)
            changes["train.epochs"] = args.epochs
        config = with_overrides(load_config(args.config), changes)
        summary = run_job(config, out, resume=True)
        with Store(out / "run.sqlite") as store:
            jobs = store.jobs("main")
            wall = [e.wall_time_s for e in store.evaluations("main")]
        search = summary["time_seconds"]["search"]
        result = {
            "workers": workers,
            "pool": "serial" if workers == 1 else "process",
            "search_s": search,
            "evaluation_s_median": sorted(wall)[len(wall) // 2],
            "workers_seen": len({j["worker"] for j in jobs}),
            "evaluations": len(wall),
        }
        first = results[0]["search_s"] if results else search
        result["speedup"] = first / search
        results.append(result)
        print(json.dumps(result), flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=["table", "main"])
    parser.add_argument("--data", type=Path)
    parser.add_argument("--delay", type=float, default=0.25)
    parser.add_argument("--searchers", default="nsga2,linas")
    parser.add_argument("--config", type=Path, default=Path("examples/lm.yaml"))
    parser.add_argument("--checkpoint", type=Path, default=Path("runs/demo/supernet.safetensors"))
    parser.add_argument("--epochs", type=int, help="main: the checkpoint's training epochs")
    parser.add_argument("--budget", type=int, default=48)
    parser.add_argument("--workers", type=lambda s: [int(n) for n in s.split(",")],
                        default=[1, 2, 4])  # fmt: skip
    parser.add_argument("--out", type=Path, default=Path("runs/bench-scaling"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    results = table(args) if args.kind == "table" else main_job(args)
    record = {
        "machine": f"{os.cpu_count()} cores",
        "args": vars(args) | {"out": str(args.out)},
        "results": [{k: v for k, v in r.items() if k != "told"} for r in results],
    }
    (args.out / f"scaling-{args.kind}.json").write_text(json.dumps(record, indent=1, default=str))


if __name__ == "__main__":
    main()
