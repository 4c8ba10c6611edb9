"""Training throughput: one sandwich step against one plain step of the largest sub-network.

Steps alternate (sandwich, plain, sandwich, ...) on the same batches so that any other load
on the machine hits both alike. A sandwich step trains the largest network on the labels and
the smallest plus N random ones by in-place distillation, as `hwnas train` does.

    python bench/train_throughput.py [--steps 15] [--batch-size 64] [--random-subnets 2]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
import torch.nn.functional as F

from hwnas.config import RunConfig
from hwnas.run import prepare


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--random-subnets", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    task, supernet = prepare(RunConfig())
    images, labels = task.data.train.tensors
    supernet.train()
    space, rng = supernet.space(), np.random.default_rng(0)
    largest = supernet.extract(supernet.teacher_arch()).train()
    sandwich_opt = torch.optim.SGD(supernet.parameters(), lr=0.01, momentum=0.9)
    plain_opt = torch.optim.SGD(largest.parameters(), lr=0.01, momentum=0.9)
    times = {"sandwich": [], "plain": []}
    for step in range(args.steps + 2):  # the first two steps warm up and are not timed
        batch = torch.randint(0, len(images), (args.batch_size,))
        x, y = images[batch], labels[batch]

        started = time.perf_counter()
        sandwich_opt.zero_grad()
        supernet.set_active(supernet.teacher_arch())
        teacher = supernet(x)
        F.cross_entropy(teacher, y).backward()
        soft = F.softmax(teacher.detach(), dim=1)
        students = [supernet.smallest_arch()] + [
            space.sample(rng) for _ in range(args.random_subnets)
        ]
        for arch in students:
            supernet.set_active(arch)
            F.kl_div(F.log_softmax(supernet(x), 1), soft, reduction="batchmean").backward()
        sandwich_opt.step()
        sandwich = time.perf_counter() - started

        started = time.perf_counter()
        plain_opt.zero_grad()
        F.cross_entropy(largest(x), y).backward()
        plain_opt.step()
        plain = time.perf_counter() - started
        if step >= 2:
            times["sandwich"].append(sandwich)
            times["plain"].append(plain)
    sandwich_s, plain_s = np.median(times["sandwich"]), np.median(times["plain"])
    print(
        json.dumps(
            {
                "batch_size": args.batch_size,
                "random_subnets": args.random_subnets,
                "steps_timed": args.steps,
                "sandwich_step_s": float(sandwich_s),
                "plain_largest_step_s": float(plain_s),
                "sandwich_images_per_s": args.batch_size / float(sandwich_s),
                "plain_largest_images_per_s": args.batch_size / float(plain_s),
                "step_time_ratio": float(sandwich_s / plain_s),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
