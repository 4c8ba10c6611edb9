"""DARTS against PC-DARTS on the NAS-Bench-201 cell space (issue 15, point 6): the cells each
derives over seeds, by argmax and by perturbation-based selection, looked up in the table,
and the peak activation memory and step time of one training step of each.

    python bench/darts.py --table ../shared/benchmarks/nb201/nb201_acc_latency.csv.gz \\
        --out runs/bench-darts [--seeds 0,1,2,3] [--methods darts,pc-darts] [--part 1/2]
    python bench/darts.py --table ... --out runs/bench-darts --cost-only

Each (method, seed) searches on the bundled digits with ``examples/darts.yaml``'s network
(override with ``--channels``/``--cells``/``--epochs``/``--arch-learning-rate``/
``--val-fraction``) and
appends one line to ``OUT/searches.jsonl`` (a killed run goes on where it stopped;
``--part K/N`` takes every N-th pair so N processes share the work). No derived cell is
retrained here: the table's 200-epoch CIFAR-10 accuracy is the figure, which is what
"looked up in the table" asks.

Memory is what autograd saves for the backward pass of one step (the activations, counted
once per storage through ``saved_tensors_hooks``), the part that PC-DARTS divides; its
convolutions see 1/K of the channels, so it also holds about 1/K of the parameters. Step
time is the median of timed weight steps, DARTS and PC-DARTS interleaved so machine drift
hits both alike.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from hwnas.benchmarks.nb201 import load_nb201
from hwnas.config import load_config, with_overrides
from hwnas.families.nb201.cell import short_label
from hwnas.oneshot.network import OneShotNB201
from hwnas.oneshot.search import select_argmax, select_perturbation, train_architecture
from hwnas.run import prepare

EXAMPLE = Path(__file__).parents[1] / "examples" / "darts.yaml"


def search_one(config, table, method: str) -> dict:
    settings = config.oneshot
    task, family = prepare(config)
    pc = method == "pc-darts"
    network = OneShotNB201(family.config, settings.partial_channels if pc else 1, pc)
    started = time.perf_counter()
    history = train_architecture(network, task, settings, config.seed)
    search_s = time.perf_counter() - started
    cells = {"argmax": select_argmax(network)}
    started = time.perf_counter()
    cells["perturbation"], _ = select_perturbation(network, task, settings, config.seed)
    row = {"method": method, "seed": config.seed, "search_s": round(search_s, 1),
           "perturbation_s": round(time.perf_counter() - started, 1),
           "supernet_val_accuracy": history[-1]["val_accuracy"],
           "final_operation_weights": history[-1]["operation_weights"]}  # fmt: skip
    for selection, ops in cells.items():
        arch = family.space().make(ops)
        row[selection] = {"cell": short_label(ops),
                          "skip_connections": sum(op == "skip_connect" for op in ops.values()),
                          **{f"table_{k}": v for k, v in table.evaluate(arch).items()}}  # fmt: skip
    return row


def saved_bytes(network: torch.nn.Module, task, inputs, targets) -> int:
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = task.loss(network(inputs), targets)
    loss.backward()
    return sum(storages.values())


def cost(config, steps: int) -> dict:
    task, family = prepare(config)
    settings = config.oneshot
    networks = {
        "darts": OneShotNB201(family.config),
        "pc-darts": OneShotNB201(family.config, settings.partial_channels, True),
    }
    inputs, targets = next(task.train_batches(settings.batch_size, torch.Generator()))
    result = {name: {"saved_activation_mib": saved_bytes(net, task, inputs, targets) / 2**20,
                     "parameters": sum(p.numel() for p in net.weights())}
              for name, net in networks.items()}  # fmt: skip
    times: dict[str, list[float]] = {name: [] for name in networks}
    optimisers = {name: torch.optim.SGD(net.parameters(), 0.01) for name, net in networks.items()}
    for step in range(steps + 2):
        for name, net in networks.items():
            started = time.perf_counter()
            optimisers[name].zero_grad(set_to_none=True)
            task.loss(net(inputs), targets).backward()
            optimisers[name].step()
            if step >= 2:
                times[name].append(time.perf_counter() - started)
    for name in networks:
        result[name]["step_ms_median"] = 1000 * statistics.median(times[name])
    result["batch_size"] = settings.batch_size
    result["network"] = {"channels": family.config.channels, "cells": family.config.cells}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--table", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("runs/bench-darts"))
    parser.add_argument("--seeds", default="0,1,2,3")
    parser.add_argument("--methods", default="darts,pc-darts")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--channels", type=int)
    parser.add_argument("--cells", type=int)
    parser.add_argument("--val-fraction", type=float,
                        help="digits' validation share (0.15), which selection reads")  # fmt: skip
    parser.add_argument("--image-size", type=int, help="digits' side in pixels (32)")
    parser.add_argument("--arch-learning-rate", type=float,
                        help="3e-4 (DARTS's) moves little in digits' few steps")  # fmt: skip
    parser.add_argument("--part", default="1/1", help="K/N: every N-th search from the K-th")
    parser.add_argument("--cost-only", action="store_true",
                        help="only memory and step time, at NAS-Bench-201's C=16 N=5")  # fmt: skip
    parser.add_argument("--cost-steps", type=int, default=10)
    args = parser.parse_args()
    config = load_config(EXAMPLE)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.cost_only:
        sized = with_overrides(config, {"supernet.overrides": {
            "channels": args.channels or 16, "cells": args.cells or 5}})  # fmt: skip
        result = cost(sized, args.cost_steps)
        (args.out / "cost.json").write_text(json.dumps(result, indent=2))
        print(json.dumps(result))
        return
    overrides = dict(config.supernet.overrides)
    overrides.update({k: v for k, v in (("channels", args.channels), ("cells", args.cells))
                      if v is not None})  # fmt: skip
    config = with_overrides(config, {"supernet.overrides": overrides})
    for key, value in (("epochs", args.epochs), ("arch_learning_rate", args.arch_learning_rate)):
        if value:
            config = with_overrides(config, {f"oneshot.{key}": value})
    for key, value in (("val_fraction", args.val_fraction), ("image_size", args.image_size)):
        if value:
            config = with_overrides(config, {f"data.{key}": value})
    table = load_nb201(args.table, "cifar10", "pixel3")
    part, parts = (int(x) for x in args.part.split("/"))
    pairs = [(m, int(s)) for s in args.seeds.split(",") for m in args.methods.split(",")]
    path = args.out / f"searches{part}.jsonl"
    done = set()
    if path.exists():
        done = {(r["method"], r["seed"]) for r in map(json.loads, path.read_text().splitlines())}
    for method, seed in pairs[part - 1 :: parts]:
        if (method, seed) in done:
            continue
        run = with_overrides(config, {"seed": seed, "oneshot.method": method})
        row = search_one(run, table, method)
        with path.open("a") as sink:
            sink.write(json.dumps(row) + "\n")
        print(json.dumps({k: row[k] for k in ("method", "seed", "argmax", "perturbation")}))


if __name__ == "__main__":
    main()
