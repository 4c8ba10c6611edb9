"""The CUDA training path, checked on a machine with a GPU (issue 11, point 5).

    python bench/cuda_check.py --out runs/cuda-check [--epochs 2]

CI has no GPU, so this is the prepared check for a session that is lent one. For each
family on a task it serves (the MobileNet on digits, the transformer and the LLaMA-style
decoder on the standard library's bytes), it trains the same small config with the same
seed with ``train.device: cpu`` and ``train.device: cuda``, and reports per device the
epochs' losses and seconds; then it fine-tunes each CUDA-trained dense LLaMA with
``hwnas instatune`` on CUDA and searches on the CPU. It checks what must hold on any GPU:
training lowers the loss there as it does on the CPU (the numbers differ: CUDA kernels are
not bit-identical to the CPU's), the checkpoints load on the CPU, and the run ends with its
models exported. Prints JSON and writes ``OUT/cuda_check.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from hwnas.config import validated
from hwnas.families import load_checkpoint
from hwnas.run import CHECKPOINT, prepare, run_job, train_job

TEXT = {"name": "python", "context": 128, "windows_per_epoch": 512, "eval_windows": 32}
CASES = {
    "mobilenet": {"data": {"name": "digits"}, "supernet": {"name": "mobilenet"}},
    "transformer": {"data": TEXT, "supernet": {"name": "transformer"}},
    "llama": {"data": TEXT, "supernet": {"name": "llama"}},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/cuda-check"))
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("cuda_check: this machine has no CUDA device")
    results: dict = {"device": torch.cuda.get_device_name(0), "families": {}}
    for family, case in CASES.items():
        record = {}
        for device in ("cpu", "cuda"):
            config = validated({**case, "seed": 0, "train": {
                "epochs": args.epochs, "batch_size": 32, "device": device,
                "dense": family == "llama"}, "search": {"budget": 6}})  # fmt: skip
            out = args.out / family / device
            started = time.perf_counter()
            trained = train_job(config, out)
            _, model = prepare(config)
            load_checkpoint(out / CHECKPOINT, model)  # a CUDA-trained checkpoint on the CPU
            record[device] = {
                "losses": [round(h["loss"], 4) for h in trained["training"]],
                "seconds": round(time.perf_counter() - started, 1),
            }
            assert record[device]["losses"][-1] < record[device]["losses"][0], (family, device)
        if family == "llama":
            tune = validated({**case, "seed": 0, "train": {"epochs": 1, "batch_size": 32,
                              "device": "cuda"}, "search": {"budget": 6}})  # fmt: skip
            summary = run_job(tune, args.out / family / "instatune",
                              dense=args.out / family / "cuda" / CHECKPOINT)  # fmt: skip
            record["instatune_exported"] = sorted(summary["exported"])
            assert summary["exported"], "instatune exported nothing"
        results["families"][family] = record
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cuda_check.json").write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
