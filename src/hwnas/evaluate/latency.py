"""Latency measured for real: ONNX Runtime (default) or PyTorch eager, threads pinned.

Batch 1 by default, warm-up runs first, then repeated timed runs until ``repeats`` are done
or ``max_seconds`` is spent; the median and the inter-quartile range are reported.
"""

from __future__ import annotations

import io
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from hwnas.space import Arch

Backend = Literal["onnxruntime", "torch"]


@dataclass(frozen=True)
class LatencySettings:
    backend: Backend = "onnxruntime"
    threads: int = 1
    batch_size: int = 1
    warmup: int = 5
    repeats: int = 30
    max_seconds: float = 1.0  # the same defaults as the run config's latency section


@dataclass(frozen=True)
class Timing:
    median_ms: float
    iqr_ms: float
    runs: int


def to_onnx(module: torch.nn.Module, example: torch.Tensor) -> bytes:
    """Serialise with the TorchScript exporter: ~20x faster to export than dynamo here."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module.eval(),
            (example,),
            buffer,
            dynamo=False,
            opset_version=17,
            input_names=["input"],
            output_names=["logits"],
        )
    return buffer.getvalue()


def onnx_session(model: bytes, threads: int):  # -> onnxruntime.InferenceSession
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def _time(call: Callable[[], object], settings: LatencySettings) -> Timing:
    for _ in range(settings.warmup):
        call()
    samples: list[float] = []
    deadline = time.perf_counter() + settings.max_seconds
    while len(samples) < settings.repeats and (len(samples) < 3 or time.perf_counter() < deadline):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000)
    q1, median, q3 = np.percentile(samples, [25, 50, 75])
    return Timing(float(median), float(q3 - q1), len(samples))


def measure(module: torch.nn.Module, example: torch.Tensor, settings: LatencySettings) -> Timing:
    module = module.eval()
    if settings.backend == "onnxruntime":
        session = onnx_session(to_onnx(module, example), settings.threads)
        feed = {"input": example.numpy()}
        return _time(lambda: session.run(None, feed), settings)
    previous = torch.get_num_threads()
    torch.set_num_threads(settings.threads)
    try:
        with torch.inference_mode():
            return _time(lambda: module(example), settings)
    finally:
        torch.set_num_threads(previous)


class LatencyEvaluator:
    """Measures the standalone sub-network that ``build`` returns for an arch."""

    metrics = ("latency_ms", "latency_iqr_ms")

    def __init__(
        self,
        build: Callable[[Arch], torch.nn.Module],
        input_shape: tuple[int, ...],
        settings: LatencySettings | None = None,
    ) -> None:
        self.build = build
        self.settings = settings or LatencySettings()
        self.example = torch.randn(self.settings.batch_size, *input_shape)

    def evaluate(self, arch: Arch) -> dict[str, float]:
        timing = measure(self.build(arch), self.example, self.settings)
        return {"latency_ms": timing.median_ms, "latency_iqr_ms": timing.iqr_ms}
