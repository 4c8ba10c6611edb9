"""Quantized sub-networks on this machine's ONNX Runtime: INT8 against fp32 (and, for the
transformer, INT4 RTN against AWQ) in latency, size, and Q/DQ left after optimisation.

    .venv/bin/python bench/quantization.py                  # latency, sizes, Q/DQ, kernels
    .venv/bin/python bench/quantization.py --calibration    # MinMax vs Entropy vs Percentile

The default mode builds each family with its default config (MobileNet on 32x32 images,
transformer on a 128-byte context; untrained weights, which do not change latency) and
times its largest (``teacher_arch``), a random mid-sized and its smallest sub-network at
batch 1 on one thread. The variants of one sub-network are timed in interleaved rounds
(``time_rounds``: each round times every variant once, in a random order), so drift of the
machine lands on all of them alike; the median over rounds is reported.

``--calibration`` trains each family's small instance for a few hundred steps (MobileNet on
digits, transformer on the standard library), quantizes it to INT8 with each calibration
method, and reports the task's quality and the seconds quantization took.

Prints JSON; writes nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np
import onnxruntime
import torch
import torch.nn.functional as F

from hwnas.families import FAMILIES, build_family
from hwnas.hardware.measure import onnx_session, time_rounds, to_onnx
from hwnas.hardware.settings import LatencySettings
from hwnas.quantize import (
    OnnxModule,
    file_bytes,
    qdq_report,
    quantize_int4,
    quantize_int8,
    weight_bytes,
)
from hwnas.quantize.int8 import METHODS
from hwnas.tasks import load_task
from hwnas.tasks.base import InputSpec, TaskSpec

SPECS = {
    "mobilenet": TaskSpec("classification", InputSpec("image", (3, 32, 32)), 10),
    "transformer": TaskSpec("language-model", InputSpec("tokens", (128,), 256), 256),
}


def cpu_flags() -> list[str]:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("flags"):
                    flags = line.split(":", 1)[1].split()
                    wanted = ("avx2", "avx512", "vnni", "amx")
                    return sorted(f for f in flags if f.startswith(wanted) or "vnni" in f)
    except OSError:
        pass
    return []


def mid_arch(net, seed: int):
    """A random arch whose parameter count is nearest the middle of teacher and smallest."""
    rng = np.random.default_rng(seed)
    low, high = net.cost(net.smallest_arch()).params, net.cost(net.teacher_arch()).params
    target = (low + high) / 2
    archs = [net.space().sample(rng) for _ in range(32)]
    return min(archs, key=lambda a: abs(net.cost(a).params - target))


def variants(family: str, data: bytes, calibration: torch.Tensor) -> dict[str, bytes]:
    out = {"fp32": data}
    started = time.perf_counter()
    out["int8"] = quantize_int8(data, calibration)
    seconds = {"int8": time.perf_counter() - started}
    if family == "transformer":
        for name, kwargs in (("int4_rtn", {"awq": False}), ("int4_awq", {"awq": True}),
                             ("int4_awq_acc4", {"awq": True, "accuracy_level": 4})):  # fmt: skip
            started = time.perf_counter()
            out[name] = quantize_int4(data, calibration, **kwargs)
            seconds[name] = time.perf_counter() - started
    return out, seconds


def bench_family(family: str, args, settings: LatencySettings) -> list[dict]:
    torch.manual_seed(args.seed)
    net = build_family(family, None, SPECS[family]).eval()
    archs = {"largest": net.teacher_arch(), "mid": mid_arch(net, args.seed),
             "smallest": net.smallest_arch()}  # fmt: skip
    rows = []
    for label, arch in archs.items():
        module = net.extract(arch).eval()
        example = net.deployed_input(arch, 1, torch.Generator().manual_seed(args.seed))
        calibration = net.deployed_input(arch, args.calibration_samples,
                                         torch.Generator().manual_seed(args.seed + 1))  # fmt: skip
        data = to_onnx(module, example)
        models, seconds = variants(family, data, calibration)
        feed = {"input": example.numpy()}
        sessions = [onnx_session(m, settings.threads) for m in models.values()]
        calls = [lambda s=s, f=feed: s.run(None, f) for s in sessions]
        timings = np.median(time_rounds(calls, settings, args.rounds, seed=args.seed).ms, axis=0)
        with torch.no_grad():
            expected = module(example).numpy()
        row = {
            "family": family,
            "sub_network": label,
            "label": net.label(arch),
            "macs": net.cost(arch).macs,
            "params": net.cost(arch).params,
            "variants": {},
        }
        for (name, model), ms in zip(models.items(), timings, strict=True):
            got = OnnxModule(model)(example).numpy()
            row["variants"][name] = {
                "latency_ms": round(float(ms), 4),
                "speedup_vs_fp32": round(float(timings[0] / ms), 3),
                "file_bytes": file_bytes(model),
                "weight_bytes": weight_bytes(model),
                "max_abs_diff_vs_torch": float(np.abs(got - expected).max()),
                "quantize_seconds": round(seconds.get(name, 0.0), 3),
                **({"qdq": qdq_report(model)} if name != "fp32" else {}),
            }
        rows.append(row)
    return rows


# -- calibration methods on small trained models ---------------------------------------
def trained(family: str, task, spec: TaskSpec, steps: int, seed: int):
    torch.manual_seed(seed)
    overrides = dict(FAMILIES[family].small_overrides)
    if family == "mobilenet":  # the data's own size: no resize between data and network
        overrides["resolutions"] = (spec.input.shape[-1],)
    net = build_family(family, overrides, spec)
    module = net.extract(net.teacher_arch()).train()
    optimizer = torch.optim.AdamW(module.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(seed)
    done = 0
    while done < steps:
        for x, y in task.train_batches(32, generator):
            logits = module(x)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            done += 1
            if done >= steps:
                break
    return net, module.eval()


def bench_calibration(args) -> list[dict]:
    cases = [("mobilenet", "digits", {"image_size": 32}),
             ("transformer", "python", {"context": 64})]  # fmt: skip
    rows = []
    for family, data_name, options in cases:
        task = load_task(data_name, None, args.seed, **options)
        spec = task.spec
        net, module = trained(family, task, spec, args.train_steps, args.seed)
        example = task.calibration_inputs(1, args.seed)
        data = to_onnx(module, example, dynamic_batch=True)
        calibration = task.calibration_inputs(args.calibration_samples, args.seed)
        row = {"family": family, "data": data_name, "train_steps": args.train_steps,
               "fp32": task.quality(module, "val")}  # fmt: skip
        settings = [(m, {"method": m}) for m in METHODS if m != "percentile"]
        settings += [(f"percentile_{p}", {"method": "percentile", "percentile": p})
                     for p in args.percentiles]  # fmt: skip
        for name, kwargs in settings:
            started = time.perf_counter()
            q = quantize_int8(data, calibration, **kwargs)
            seconds = time.perf_counter() - started
            row[name] = {**task.quality(OnnxModule(q), "val"), "seconds": round(seconds, 2)}
        if family == "transformer":  # INT4 weight-only: AWQ against round-to-nearest
            for name, awq in (("int4_rtn", False), ("int4_awq", True)):
                started = time.perf_counter()
                q = quantize_int4(data, calibration, awq=awq)
                seconds = time.perf_counter() - started
                row[name] = {**task.quality(OnnxModule(q), "val"), "seconds": round(seconds, 2)}
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--families", nargs="+", default=list(SPECS), choices=list(SPECS))
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds")
    parser.add_argument("--max-seconds", type=float, default=0.5, help="per timing")
    parser.add_argument("--calibration-samples", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--calibration",
        action="store_true",
        help="compare calibration methods on small trained models instead",
    )
    parser.add_argument("--train-steps", type=int, default=300)
    parser.add_argument("--percentiles", type=float, nargs="+", default=[99.9, 99.99, 99.999])
    # fmt: skip
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = time.perf_counter()
    environment = {"cpu": platform.processor() or platform.machine(), "cpu_flags": cpu_flags(),
                   "cpu_count": os.cpu_count(), "onnxruntime": onnxruntime.__version__,
                   "torch": torch.__version__}  # fmt: skip
    if args.calibration:
        result = {"environment": environment, "calibration": bench_calibration(args)}
    else:
        settings = LatencySettings(max_seconds=args.max_seconds)
        rows = [r for family in args.families for r in bench_family(family, args, settings)]
        result = {"environment": environment, "settings": settings.model_dump(),
                  "rounds": args.rounds, "results": rows}  # fmt: skip
    result["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
