"""The Once-for-All claim on the elastic transformer language model (issue 14, point 4).

Does a sub-network with weights inherited from the super-network score like the same
sub-network trained alone, and do the two rank sub-networks alike? Measured for two ways of
training the super-network, so the numbers also say which trains the better one:

- ``sandwich``: the config as it is (the teacher on the labels, the smallest and
  ``train.random_subnets`` random ones distilled from it in every step);
- ``progressive``: the same with ``train.progressive: true`` (Once-for-All's progressive
  shrinking in the family's phases: full network, operators, depth, sizes).

    .venv/bin/python bench/ofa_transformer.py --config examples/lm.yaml \
        --out runs/bench-ofa-transformer --epochs 4 --subnets 10 --seed 0

What is compared, per sub-network: validation bits per byte (the task's own ``quality`` on
the ``val`` split, the windows the search scores on) of ``family.extract(arch)`` from each
trained super-network, passed through the run's batch-norm recalibration as the search does
(a no-op here: the transformer has layer norms, which hold no running statistics), against
the same arch trained alone from scratch.

Sub-networks: the family's smallest and largest (the teacher), and ``--subnets`` - 2 of
``--pool`` random archs of its space at evenly spaced ranks by ``--cost`` (MACs by default,
or parameters), the cheapest and the dearest of the pool among them: spread as a random
search sees the space, operators mixed per layer. ``--seed`` draws the pool (and is the
run's seed: initial weights, data order).

Training alone, and why it is fair: the trainer hwnas trains every super-network with
(``hwnas.train.SandwichTrainer``), with ``train.dense: true`` (no students: one network per
step, on the labels) and the chosen arch in place of the largest. So the arch alone gets
exactly the super-network's budget and recipe: the same epochs, steps, batch size, windows
in the same order (the trainer draws them from the seed and the epoch), AdamW with the same
learning rate, warm-up, cosine decay, weight decay, gradient clipping and label smoothing,
and the mixture of experts' balance loss. Its initial weights are the super-network's at
the start of its training (built by ``hwnas.run.prepare`` with the same seed), sliced to the
arch: weights it never uses get no gradient and never influence it. "Same budget" means the
same steps and data seen, not the same compute: a sandwich step trains several
sub-networks. Only the labels differ from a student's: alone there is no teacher to distil.
``train.dense`` alone is exactly this for the largest arch.

Reported: per sub-network MACs, parameters, bits per byte inherited from each super-network
and alone; for each super-network the mean and largest gap (inherited - alone, in bits per
byte; negative: inheriting is better) and Kendall's tau between the inherited and the alone
rankings (goal: tau >= 0.8), with its p-value; seconds of each phase. ``OUT/results.json``
holds it all; a table is printed.

Resumable: each super-network is checkpointed every epoch in ``OUT/<name>/`` (``hwnas
train``'s folder) and each sub-network trained alone in ``OUT/alone/``, its result kept in
``OUT/alone/NN.json``; a rerun with the same settings skips what is done (the inherited
scores, seconds of work, are measured again). ``OUT/benchmark.json`` records the settings,
and a rerun with others is refused.

Runtime on the 2-core VM of docs/benchmarks.md (2 training threads, ``examples/lm.yaml``):
about 2-2.5 minutes per super-network (4 epochs of 64 steps), 20-120 s per sub-network
alone by its size (the largest: ~113 s, ``hwnas train --dense`` for 4 epochs), under 20 s
of evaluation: about 12-16 minutes in all with 10 sub-networks. ``--windows`` and
``--eval-windows`` shrink the data for a smoke test (then the numbers mean nothing).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import kendalltau

from hwnas import __version__
from hwnas.config import RunConfig, TrainConfig, load_config, with_overrides
from hwnas.errors import HwnasError
from hwnas.evaluate.quality import recalibrate_batchnorm
from hwnas.families import load_checkpoint
from hwnas.families.base import Family
from hwnas.files import write_atomic
from hwnas.progress import ProgressTask
from hwnas.run import CHECKPOINT, prepare, train_job
from hwnas.space import Arch
from hwnas.tasks.base import Task
from hwnas.train import SandwichTrainer, resolve_settings

SUPERNETS: dict[str, dict[str, Any]] = {"sandwich": {}, "progressive": {"train.progressive": True}}
QUALITY = "bits_per_byte"
TAU_GOAL = 0.8
POOL_STREAM = 0x0FA  # keeps the pool's draw apart from anything else the seed decides


# -- progress ----------------------------------------------------------------------------
class _EpochLine:
    """Prints the trainer's last description of an epoch (loss, accuracy) when it ends."""

    def __init__(self, prefix: str, description: str) -> None:
        self.prefix, self.description = prefix, description
        self.started = time.perf_counter()

    def advance(self, n: int = 1, **fields: Any) -> None:
        self.description = fields.get("description", self.description)

    def close(self) -> None:
        seconds = time.perf_counter() - self.started
        print(f"  {self.prefix}: {self.description} ({seconds:.0f} s)", flush=True)


class EpochPrinter:
    """A ``hwnas.progress.Progress`` that prints one line per training epoch: minutes of
    training should show they are moving, and a log should say how each epoch went."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def task(self, description: str, total: int | None) -> ProgressTask:
        return _EpochLine(self.prefix, description)


# -- training ----------------------------------------------------------------------------
class AloneTrainer(SandwichTrainer):
    """The super-network's own trainer with ``train.dense`` (one network per step, on the
    labels, no students) training ``arch`` where it would train the largest: the budget and
    recipe of the super-network's training, for one sub-network alone.

    hwnas has no public way to train one chosen sub-network (``train.dense`` always takes
    the largest), so the arch replaces the trainer's ``teacher``, the one network a dense
    step runs."""

    def __init__(self, arch: Arch, model: Family, task: Task, settings: TrainConfig, seed: int,
                 identity: dict[str, Any]) -> None:  # fmt: skip
        if not settings.dense:
            raise ValueError("AloneTrainer trains one network: settings.dense must be true")
        super().__init__(model, task, settings, seed, identity)
        self.teacher = model.canonical(arch)


def train_supernet(name: str, config: RunConfig, out: Path) -> dict[str, Any]:
    """``hwnas train`` of ``config`` into ``out`` (continued, or reused once complete)."""
    resume = (out / CHECKPOINT).exists()
    state = "continuing (or reusing) the checkpoint" if resume else "training"
    print(f"{name}: {state} in {out}", flush=True)
    result = train_job(config, out, resume=resume, progress=EpochPrinter(name))
    history = result["training"]
    return {"checkpoint": result["checkpoint"], "history": history,
            "seconds": float(sum(h["seconds"] for h in history))}  # fmt: skip


def _alone_trainer(arch: Arch, config: RunConfig) -> tuple[AloneTrainer, Task, Family]:
    """A fresh ``AloneTrainer`` of ``arch`` on ``config`` with ``train.dense``, its
    weights built by ``prepare`` from the seed: the super-networks' own start."""
    alone = with_overrides(config, {"train.dense": True})
    task, model = prepare(alone)
    settings = resolve_settings(alone.train, type(model), type(task))
    identity = {**alone.data.model_dump(mode="json"), **task.identity(), "alone": arch.key}
    return AloneTrainer(arch, model, task, settings, alone.seed, identity), task, model


def train_alone(index: int, arch: Arch, config: RunConfig, folder: Path) -> dict[str, Any]:
    """Train ``arch`` alone (``AloneTrainer``) and score it on the validation split; the
    result is kept in ``folder/NN.json``, and a finished one is read back, not trained
    again. A checkpoint after every epoch lets a killed run continue mid-training; it is
    deleted once the result is written (each holds the whole super-network's weights)."""
    result_path = folder / f"{index:02d}.json"
    if result_path.exists():
        done = json.loads(result_path.read_text())
        if done["key"] != arch.key:
            raise HwnasError(f"{result_path}: holds another sub-network; use a new --out")
        return done
    folder.mkdir(parents=True, exist_ok=True)
    checkpoint = folder / f"{index:02d}.safetensors"
    trainer, task, model = _alone_trainer(arch, config)
    if checkpoint.exists():
        trainer.restore(checkpoint)
    history = trainer.fit(EpochPrinter(f"alone {index:02d}"), checkpoint)
    module = model.eval().extract(arch)
    done = {"key": arch.key, "arch": arch.to_dict(), "val": task.quality(module, "val"),
            "history": history, "seconds": float(sum(h["seconds"] for h in history))}  # fmt: skip
    write_atomic(result_path, json.dumps(done, indent=1).encode())
    for part in folder.glob(f"{index:02d}.safetensors*"):
        part.unlink()
    return done


# -- choosing and scoring sub-networks ---------------------------------------------------
def spread_subnets(model: Family, count: int, pool: int, cost: str, seed: int) -> list[Arch]:
    """The family's smallest and largest (the teacher) and ``count - 2`` of ``pool`` random
    archs at evenly spaced ranks by ``cost``, the cheapest and the dearest of them included;
    sorted by ``cost``. The extremes are added by name: by MACs neither is the space's
    extreme (linear attention and a top-1 mixture of experts cost less than the smallest's
    softmax and MLP, a gated feed-forward more than the teacher's MLP)."""
    space = model.space()
    rng = np.random.default_rng([seed, POOL_STREAM])
    extremes = {a.key: a for a in (model.smallest_arch(), model.teacher_arch())}
    randoms = {a.key: a for a in (space.sample(rng) for _ in range(pool))}
    ranked = sorted((a for k, a in randoms.items() if k not in extremes),
                    key=lambda a: (getattr(model.cost(a), cost), a.key))  # fmt: skip
    wanted = count - len(extremes)
    if len(ranked) < wanted:
        raise HwnasError(f"--pool {pool}: only {len(ranked)} distinct archs for {count} subnets")
    ranks = np.unique(np.linspace(0, len(ranked) - 1, wanted).round().astype(int))
    chosen = [*extremes.values(), *(ranked[int(r)] for r in ranks)]
    return sorted(chosen, key=lambda a: (getattr(model.cost(a), cost), a.key))


def inherited_scores(
    config: RunConfig, checkpoint: Path, archs: list[Arch]
) -> list[dict[str, float]]:
    """Validation metrics of each arch extracted from the trained super-network, after the
    recalibration the search applies (``hwnas.run``: batch norm only, none in this family)."""
    task, model = prepare(config)
    load_checkpoint(checkpoint, model)
    model.eval()
    calibration = task.calibration_inputs(config.search.calibration_images, config.seed)
    scores = []
    for arch in archs:
        module = model.extract(arch)
        recalibrate_batchnorm(module, calibration)
        scores.append(task.quality(module, "val"))
    return scores


def compare(inherited: list[float], alone: list[float]) -> dict[str, float]:
    """Gap (inherited - alone, bits per byte) and Kendall's tau of the two rankings."""
    gaps = np.asarray(inherited) - np.asarray(alone)
    tau, p_value = kendalltau(inherited, alone)
    return {"mean_gap": float(gaps.mean()), "max_gap": float(gaps.max()),
            "min_gap": float(gaps.min()), "mean_abs_gap": float(np.abs(gaps).mean()),
            "kendall_tau": float(tau), "kendall_p": float(p_value),
            "tau_goal_met": bool(tau >= TAU_GOAL)}  # fmt: skip


def verdict(summary: dict[str, dict[str, float]]) -> dict[str, str]:
    """Which super-network is better by each criterion: smaller mean gap (the alone scores
    are shared, so also the lower mean inherited bits per byte) and higher tau."""
    names = list(summary)
    return {
        "lower_mean_gap": min(names, key=lambda n: summary[n]["mean_gap"]),
        "higher_kendall_tau": max(names, key=lambda n: summary[n]["kendall_tau"]),
    }


# -- settings and output -----------------------------------------------------------------
def benchmark_identity(config: RunConfig, args: argparse.Namespace) -> dict[str, Any]:
    """What decides the results (not threads): a rerun into the same --out must match."""
    identity = config.identity()
    for key in ("threads", "device"):
        identity["train"].pop(key, None)
    return {"config": identity, "subnets": args.subnets, "pool": args.pool, "cost": args.cost}


def check_out(out: Path, identity: dict[str, Any]) -> None:
    recorded = out / "benchmark.json"
    if recorded.exists():
        if json.loads(recorded.read_text()) != identity:
            raise HwnasError(f"{out} holds a benchmark with other settings; use a new --out")
        return
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(recorded, json.dumps(identity, indent=1).encode())


def print_table(result: dict[str, Any]) -> None:
    names = list(SUPERNETS)
    wide = max(len(row["label"]) for row in result["subnets"])
    head = f"{'#':>2}  {'label':<{wide}} {'MACs':>11} {'params':>8}"
    head += "".join(f" {n[:11]:>11}" for n in names) + f" {'alone':>7}"
    print(f"\nvalidation {QUALITY.replace('_', ' ')} ({result['epochs']} epochs each)")
    print(head)
    for i, row in enumerate(result["subnets"]):
        cells = "".join(f" {row['inherited'][n][QUALITY]:11.3f}" for n in names)
        print(f"{i:>2}  {row['label']:<{wide}} {row['macs']:>11,} {row['params']:>8,}"
              f"{cells} {row['alone'][QUALITY]:7.3f}")  # fmt: skip
    print(f"\n{'super-network':<13} {'mean gap':>9} {'max gap':>8} {'tau':>6} {'p':>7}  "
          f"goal tau >= {TAU_GOAL}  train s")  # fmt: skip
    for n in names:
        s = result["summary"][n]
        print(f"{n:<13} {s['mean_gap']:+9.3f} {s['max_gap']:+8.3f} {s['kendall_tau']:6.3f} "
              f"{s['kendall_p']:7.4f}  {'met' if s['tau_goal_met'] else 'missed':<17} "
              f"{result['seconds'][f'train_{n}']:7.0f}")  # fmt: skip
    v = result["verdict"]
    print(
        f"\nlower mean gap: {v['lower_mean_gap']}; higher tau: {v['higher_kendall_tau']}; "
        f"tau between the two inherited rankings: {result['tau_sandwich_progressive']:.3f}"
    )
    print("seconds: " + ", ".join(f"{k} {s:.0f}" for k, s in result["seconds"].items()))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=Path("examples/lm.yaml"))
    parser.add_argument("--out", type=Path, default=Path("runs/bench-ofa-transformer"))
    parser.add_argument("--epochs", type=int, default=4,
                        help="train.epochs of every training (progressive needs >= 4)")  # fmt: skip
    parser.add_argument("--subnets", type=int, default=10, help="sub-networks compared (>= 8)")
    parser.add_argument("--pool", type=int, default=2000, help="random archs ranked by cost")
    parser.add_argument("--cost", choices=("macs", "params"), default="macs")
    parser.add_argument("--seed", type=int, default=None, help="the run's seed; unset, config's")
    parser.add_argument("--threads", type=int, default=None, help="train.threads; unset, config's")
    parser.add_argument("--windows", type=int, default=None,
                        help="data.windows_per_epoch (smoke tests only)")  # fmt: skip
    parser.add_argument("--eval-windows", type=int, default=None,
                        help="data.eval_windows (smoke tests only)")  # fmt: skip
    args = parser.parse_args()
    if args.subnets < 2:
        parser.error("--subnets: at least 2 (the issue asks for 8 or more)")
    return args


def main() -> None:
    args = parse_args()
    started = time.perf_counter()
    changes: dict[str, Any] = {"train.epochs": args.epochs}
    optional = {
        "seed": args.seed,
        "train.threads": args.threads,
        "data.windows_per_epoch": args.windows,
        "data.eval_windows": args.eval_windows,
    }
    changes |= {k: v for k, v in optional.items() if v is not None}  # fmt: skip
    config = with_overrides(load_config(args.config), changes)
    if config.supernet.name != "transformer" or config.data.name != "python":
        print("note: this benchmark is meant for the transformer on python data", flush=True)
    threads = config.train.threads
    torch.set_num_threads(threads)
    check_out(args.out, benchmark_identity(config, args))
    seconds: dict[str, float] = {}

    trained = {}
    for name, overrides in SUPERNETS.items():
        trained[name] = train_supernet(name, with_overrides(config, overrides), args.out / name)
        seconds[f"train_{name}"] = trained[name]["seconds"]

    _, model = prepare(config)
    archs = spread_subnets(model, args.subnets, args.pool, args.cost, config.seed)
    print(f"{len(archs)} sub-networks, {args.cost} "
          f"{getattr(model.cost(archs[0]), args.cost):,} to "
          f"{getattr(model.cost(archs[-1]), args.cost):,}", flush=True)  # fmt: skip

    begun = time.perf_counter()
    inherited = {name: inherited_scores(with_overrides(config, SUPERNETS[name]),
                                        Path(t["checkpoint"]), archs)
                 for name, t in trained.items()}  # fmt: skip
    seconds["inherited_eval"] = time.perf_counter() - begun

    alone = []
    for i, arch in enumerate(archs):
        print(f"alone {i:02d}: {model.label(arch)}", flush=True)
        alone.append(train_alone(i, arch, config, args.out / "alone"))
    seconds["train_alone"] = float(sum(a["seconds"] for a in alone))

    rows = []
    for i, arch in enumerate(archs):
        cost = model.cost(arch)
        rows.append({"label": model.label(arch), "key": arch.key, "macs": cost.macs,
                     "params": cost.params,
                     "inherited": {n: inherited[n][i] for n in SUPERNETS},
                     "alone": alone[i]["val"], "alone_seconds": alone[i]["seconds"]})  # fmt: skip
    alone_q = [r["alone"][QUALITY] for r in rows]
    summary = {n: compare([r["inherited"][n][QUALITY] for r in rows], alone_q) for n in SUPERNETS}
    between = kendalltau(*([r["inherited"][n][QUALITY] for r in rows] for n in SUPERNETS))[0]
    seconds["wall_this_invocation"] = time.perf_counter() - started
    result = {
        "hwnas_version": __version__,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "config": str(args.config),
        "seed": config.seed,
        "epochs": args.epochs,
        "threads": threads,
        "data": config.data.model_dump(mode="json", exclude_none=True),
        "selection": {"pool": args.pool, "cost": args.cost, "subnets": len(archs)},
        "quality": f"{QUALITY} on the val split (lower is better)",
        "gap": "inherited - alone (negative: the inherited weights score better)",
        "subnets": rows,
        "summary": summary,
        "verdict": verdict(summary),
        "tau_sandwich_progressive": float(between),
        "training": {n: t["history"] for n, t in trained.items()},
        "seconds": seconds,
    }
    write_atomic(args.out / "results.json", json.dumps(result, indent=1).encode())
    print_table(result)
    print(f"\nwritten: {args.out / 'results.json'}")


if __name__ == "__main__":
    try:
        main()
    except HwnasError as exc:  # a refused setting or folder: one line, not a traceback
        sys.exit(f"error: {exc}")
