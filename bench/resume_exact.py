"""A benchmark killed at random moments ends as the uninterrupted one (issue 12, point 1).

    .venv/bin/python bench/resume_exact.py \
        --data ../shared/benchmarks/nb201/nb201_acc_latency.csv.gz \
        --searchers linas,nsga2 --budget 300 --kills 10 --out runs/bench-resume

For each searcher, ``hwnas bench nb201`` (one seed) runs once uninterrupted, and once killed
with SIGKILL ``--kills`` times, each time after a random number of further evaluations
reached the store, and started again on the same ``--out`` until it completes. Reports how
many of the evaluations the two runs share, in the same order, and the hypervolume ratio
each reports. Prints JSON and writes ``OUT/resume_exact.json``.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from hwnas.store import Store


def _command(args: argparse.Namespace, searcher: str, out: Path) -> list[str]:
    return [sys.executable, "-m", "hwnas", "bench", "nb201", "--data", str(args.data),
            "--dataset", args.dataset, "--device", args.device, "--searchers", searcher,
            "--seeds", "1", "--budget", str(args.budget), "--out", str(out)]  # fmt: skip


def _stored(out: Path, run_id: str) -> int:
    path = out / "runs.sqlite"
    if not path.exists() or not path.stat().st_size:  # not there yet, or being created
        return 0
    with Store(path) as store:
        return store.count(run_id)


def _killed_at(job: subprocess.Popen, out: Path, run_id: str, count: int) -> int:
    """SIGKILL ``job`` once ``count`` evaluations are stored; what was stored then."""
    while job.poll() is None and _stored(out, run_id) < count:
        time.sleep(0.02)
    job.send_signal(signal.SIGKILL)
    job.wait()
    return _stored(out, run_id)


def _sequence(out: Path, run_id: str) -> list[str]:
    with Store(out / "runs.sqlite") as store:
        return [e.arch_key for e in store.evaluations(run_id)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--dataset", default="cifar10")
    parser.add_argument("--device", default="pixel3")
    parser.add_argument("--searchers", default="linas,nsga2")
    parser.add_argument("--budget", type=int, default=300)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path("runs/bench-resume"))
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    results = {}
    for searcher in args.searchers.split(","):
        run_id = f"{searcher}/seed0"
        whole, killed = args.out / searcher / "whole", args.out / searcher / "killed"
        started = time.perf_counter()
        subprocess.run(_command(args, searcher, whole), check=True, capture_output=True)
        whole_seconds = time.perf_counter() - started
        targets = np.sort(rng.choice(np.arange(1, args.budget), args.kills, replace=False))
        kills, started = [], time.perf_counter()
        for target in targets:
            job = subprocess.Popen(_command(args, searcher, killed), stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)  # fmt: skip
            kills.append(_killed_at(job, killed, run_id, int(target)))
        subprocess.run(_command(args, searcher, killed), check=True, capture_output=True)
        killed_seconds = time.perf_counter() - started
        a, b = _sequence(whole, run_id), _sequence(killed, run_id)
        summaries = [json.loads((f / "summary.json").read_text()) for f in (whole, killed)]
        key = f"hv_ratio@{args.budget}"
        results[searcher] = {
            "killed_with_stored": kills,
            "evaluations": [len(a), len(b)],
            "shared": len(set(a) & set(b)),
            "same_order": a == b,
            key: [s["searchers"][searcher][key] for s in summaries],
            "seconds": {"uninterrupted": whole_seconds, "killed_and_resumed": killed_seconds},
        }
        print(searcher, json.dumps(results[searcher]), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "resume_exact.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
