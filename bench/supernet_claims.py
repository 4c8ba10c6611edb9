"""Super-network figures for docs/benchmarks.md, on the bundled digits data.

1. Training throughput: images/s of a sandwich step (largest + smallest + N random, with
   in-place distillation) against a plain step of the largest sub-network alone.
2. The Once-for-All claim in spirit: for sub-networks spread over the space (by MACs), top-1
   with inherited weights (after BN recalibration) against the same sub-network trained from
   scratch for the same epochs; mean gap and Kendall tau between the two rankings.

    python bench/supernet_claims.py [--epochs 6] [--subnets 10] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import kendalltau

from hwnas.config import RunConfig, TrainConfig
from hwnas.evaluate.quality import recalibrate_batchnorm
from hwnas.run import prepare
from hwnas.train import SandwichTrainer, resolve_settings


def plain_train(module, images, labels, settings: TrainConfig, seed: int, augment) -> float:
    """Ordinary training of one standalone network; returns images per second."""
    optimizer = torch.optim.SGD(module.parameters(), lr=settings.learning_rate, momentum=0.9,
                                nesterov=True, weight_decay=settings.weight_decay)  # fmt: skip
    generator = torch.Generator().manual_seed(seed)
    steps = int(np.ceil(len(images) / settings.batch_size))
    total, seen, started = settings.epochs * steps, 0, time.perf_counter()
    module.train()
    for epoch in range(settings.epochs):
        order = torch.randperm(len(images), generator=generator)
        for step in range(steps):
            for group in optimizer.param_groups:
                done = epoch * steps + step
                group["lr"] = 0.5 * settings.learning_rate * (1 + np.cos(np.pi * done / total))
            batch = order[step * settings.batch_size : (step + 1) * settings.batch_size]
            x = augment(images[batch], generator)
            loss = F.cross_entropy(
                module(x), labels[batch], label_smoothing=settings.label_smoothing
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            seen += len(batch)
    return seen / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--subnets", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = RunConfig(seed=args.seed)
    task, supernet = prepare(config)
    data = task.data
    images, labels = data.train.tensors
    calibration = task.calibration_inputs(256, args.seed)
    settings = resolve_settings(TrainConfig(epochs=args.epochs), type(supernet), type(task))

    trainer = SandwichTrainer(supernet, task, settings, args.seed)
    history = trainer.fit()
    sandwich_ips = float(np.mean([h["samples_per_second"] for h in history]))

    space = supernet.space()
    rng = np.random.default_rng(args.seed)
    pool = [space.sample(rng) for _ in range(2000)] + [supernet.smallest_arch(),
                                                      supernet.teacher_arch()]  # fmt: skip
    pool.sort(key=lambda a: supernet.cost(a).macs)
    picks = [pool[int(i)] for i in np.linspace(0, len(pool) - 1, args.subnets)]

    rows = []
    for i, arch in enumerate(picks):
        inherited = supernet.extract(arch)
        recalibrate_batchnorm(inherited, calibration)
        torch.manual_seed(args.seed + i)
        fresh = type(supernet).from_config(supernet.config.to_dict())
        scratch = fresh.extract(arch)
        ips = plain_train(scratch, images, labels, settings, args.seed + i, data.augment)
        scratch.eval()
        rows.append(
            {
                "arch": arch.key,
                "macs": supernet.cost(arch).macs,
                "inherited": task.quality(inherited)["accuracy"],
                "scratch": task.quality(scratch)["accuracy"],
                "plain_images_per_s": ips,
            }
        )
        print(json.dumps(rows[-1]), flush=True)

    largest_ips = rows[-1]["plain_images_per_s"] if picks[-1] == supernet.teacher_arch() else None
    gap = [r["inherited"] - r["scratch"] for r in rows]
    result = {
        "epochs": args.epochs,
        "sandwich_images_per_s": sandwich_ips,
        "largest_alone_images_per_s": largest_ips,
        "step_time_ratio": (largest_ips / sandwich_ips) if largest_ips else None,
        "mean_gap_points": float(np.mean(gap)),
        "kendall_tau": float(
            kendalltau([r["inherited"] for r in rows], [r["scratch"] for r in rows])[0]
        ),  # fmt: skip
        "subnets": rows,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
