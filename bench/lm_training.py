"""How the elastic transformer language model learns under the sandwich rule (issue 8).

Trains the super-network of ``examples/lm.yaml`` on the Python standard library with one
training variant, then scores the teacher, the smallest and a fixed sample of sub-networks
(inherited weights) by bits per byte on the validation windows. Variants differ only in the
``train`` settings named (``--set key=value``), so every figure comes from the product's own
trainer:

    python bench/lm_training.py --set teacher_only=0.99          # the teacher alone
    python bench/lm_training.py --set teacher_only=0 distillation=1   # BigNAS's sandwich
    python bench/lm_training.py                                  # the family's defaults

Prints one JSON line. Quality does not depend on machine load (training is deterministic for
the seed); the seconds do.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from hwnas import run
from hwnas.config import validated
from hwnas.progress import SilentProgress
from hwnas.train import SandwichTrainer, resolve_settings

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "lm.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", nargs="*", default=[], help="train.KEY=VALUE overrides")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--samples", type=int, default=6, help="random sub-networks scored")
    args = parser.parse_args()
    raw = yaml.safe_load(EXAMPLE.read_text())
    changes = dict(item.split("=", 1) for item in args.set)
    raw["train"] = {**raw["train"], **{k: yaml.safe_load(v) for k, v in changes.items()},
                    "epochs": args.epochs, "threads": args.threads}  # fmt: skip
    config = validated(raw)
    task, model = run.prepare(config)
    settings = resolve_settings(config.train, type(model), type(task))
    started = time.perf_counter()
    history = SandwichTrainer(model, task, settings, seed=config.seed).fit(SilentProgress())
    seconds = time.perf_counter() - started
    model.eval()
    rng = np.random.default_rng(12345)
    archs = {"teacher": model.teacher_arch(), "smallest": model.smallest_arch()}
    archs |= {f"random{i}": model.space().sample(rng) for i in range(args.samples)}
    scores = {}
    with torch.no_grad():
        for name, arch in archs.items():
            quality = task.quality(model.extract(arch), "val")
            scores[name] = {"bits_per_byte": round(quality["bits_per_byte"], 4),
                            "macs": model.cost(arch).macs, "key": arch.key}  # fmt: skip
    print(json.dumps({
        "set": changes,
        "settings": settings.model_dump(mode="json"),
        "train_seconds": round(seconds, 1),
        "final_train_loss": round(history[-1]["loss"], 4),
        "scores": scores,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
