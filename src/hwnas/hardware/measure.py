"""Latency measured for real: ONNX Runtime (default) or PyTorch eager, threads pinned.

Every timing in hwnas goes through ``measure``: warm-up runs, then timed runs until the 95%
confidence interval of the median is within ``target_ci`` of it (at least ``min_runs``, at
most ``max_runs``) or ``max_seconds`` is spent. A fixed repeat count is either wasteful for
a steady model or too few for a jittery one; stopping on the interval spends the runs where
the noise is. Each timing keeps its spread and run count, and ``environment`` says where it
was taken, so a number never travels without its context.
"""

from __future__ import annotations

import io
import math
import os
import platform
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from hwnas.hardware.settings import LatencySettings


@dataclass(frozen=True)
class Timing:
    median_ms: float
    iqr_ms: float
    ci_low_ms: float
    ci_high_ms: float
    runs: int
    seconds: float


def median_interval(samples: np.ndarray, z: float = 1.96) -> tuple[float, float]:
    """Distribution-free 95% interval of the median from order statistics.

    The number of samples below the median is Binomial(n, 1/2), so the order statistics of
    ranks ``n/2 -/+ z*sqrt(n)/2`` (widened to whole ranks) bracket it; no normality of the
    timings is assumed (they are skewed: a run can be much slower than typical, never much
    faster).
    """
    ordered = np.sort(samples)
    n = len(ordered)
    half = z * math.sqrt(n) / 2
    low = max(0, math.floor(n / 2 - half) - 1)  # 0-based index of rank floor(n/2 - half)
    high = min(n - 1, math.ceil(n / 2 + half))  # and of rank ceil(n/2 + half) + 1
    return float(ordered[low]), float(ordered[high])


def time_calls(call: Callable[[], object], settings: LatencySettings) -> Timing:
    for _ in range(settings.warmup):
        call()
    samples: list[float] = []
    started = time.perf_counter()
    deadline = started + settings.max_seconds
    while len(samples) < settings.max_runs:
        begin = time.perf_counter()
        call()
        end = time.perf_counter()
        samples.append((end - begin) * 1000)
        if len(samples) < settings.min_runs:
            continue
        if end >= deadline:
            break
        if len(samples) % 5 == 0:  # sorting each run would cost more than tiny models take
            low, high = median_interval(np.asarray(samples))
            if (high - low) / 2 <= settings.target_ci * np.median(samples):
                break
    values = np.asarray(samples)
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    low, high = median_interval(values)
    return Timing(
        float(median), float(q3 - q1), low, high, len(samples), time.perf_counter() - started
    )


def to_onnx(module: torch.nn.Module, example: torch.Tensor, dynamic_batch: bool = False) -> bytes:
    """Serialise with the TorchScript exporter: ~20x faster to export than dynamo here.

    Timing uses a fixed batch (what was asked to be timed); a deployed model takes any
    batch (``dynamic_batch``)."""
    buffer = io.BytesIO()
    axes = {"input": {0: "batch"}, "logits": {0: "batch"}} if dynamic_batch else None
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
            dynamic_axes=axes,
        )
    return buffer.getvalue()


def onnx_session(model: bytes, threads: int):  # -> onnxruntime.InferenceSession
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def prepare(
    module: torch.nn.Module, example: torch.Tensor, settings: LatencySettings
) -> Callable[[], object]:
    """One inference of ``module`` on ``example`` with the configured back-end, ready to time
    (for ONNX Runtime the export and session creation happen here, outside the timing).

    A model that is already ONNX (``hwnas.quantize.OnnxModule``: its bytes in ``model``) is
    timed as it is, on ONNX Runtime."""
    if not isinstance(module, torch.nn.Module):
        return _onnx_call(module.model, example, settings)
    module = module.eval()
    if settings.backend == "onnxruntime":
        return _onnx_call(to_onnx(module, example), example, settings)

    def call() -> object:
        with torch.inference_mode():
            return module(example)

    return call


def _onnx_call(
    model: bytes, example: torch.Tensor, settings: LatencySettings
) -> Callable[[], object]:
    """A session's run on ``example``. A network whose output does not depend on its input
    (NAS-Bench-201's cell of only ``none`` edges, which outputs zeros) is exported with no
    input at all; it is then timed fed nothing, which is what it costs."""
    session = onnx_session(model, settings.threads)
    feed = {graph_input.name: example.numpy() for graph_input in session.get_inputs()}
    return lambda: session.run(None, feed)


@contextmanager
def torch_threads(settings: LatencySettings) -> Iterator[None]:
    """Pin PyTorch's intra-op threads while timing with the torch back-end."""
    previous = torch.get_num_threads()
    torch.set_num_threads(settings.threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def measure(module: torch.nn.Module, example: torch.Tensor, settings: LatencySettings) -> Timing:
    """Time ``module`` on ``example`` with the configured back-end."""
    with torch_threads(settings):
        return time_calls(prepare(module, example, settings), settings)


REFERENCE_EVERY = 4
"""Calls timed between two timings of the reference: its latency at each call is read off
the line between the two, so drift over a few seconds is followed; closer costs more time
on the reference than on what is measured."""


@dataclass(frozen=True)
class RoundTimings:
    """Each call's timing in each round (shape (rounds, calls)) and, when a reference was
    timed among them, each timing divided by the reference's latency at that moment.

    On a shared machine the speed drifts over seconds to minutes by tens of percent: two
    milliseconds taken at different moments are not comparable, their ratios to a
    reference timed beside each are. ``relative * reference_median_ms`` is then the latency
    each call would have had if the machine had run at its median speed throughout.
    """

    ms: np.ndarray
    iqr_ms: np.ndarray
    runs: np.ndarray
    relative: np.ndarray | None = None
    reference_ms: np.ndarray | None = None

    @property
    def reference_median_ms(self) -> float:
        if self.reference_ms is None:
            raise ValueError("timed without a reference")
        return float(np.median(self.reference_ms))

    def at_reference_speed(self) -> np.ndarray:
        """Milliseconds with the drift taken out, at the reference's median speed."""
        if self.relative is None:
            raise ValueError("timed without a reference")
        return self.relative * self.reference_median_ms


def time_rounds(
    calls: Sequence[Callable[[], object]],
    settings: LatencySettings,
    rounds: int,
    seed: int = 0,
    advance: Callable[[int], object] = lambda n: None,
    reference: Callable[[], object] | None = None,
) -> RoundTimings:
    """Each of ``calls`` timed once per round, in a fresh random order each round.

    On a shared machine speed drifts over seconds; rounds spread each call's timing over the
    whole session, so drift averages out instead of landing on whichever calls ran during a
    slow spell. Here the median of 3 rounds halves the pass-to-pass difference of one long
    timing (docs). With ``reference``, it is timed first and again after every
    ``REFERENCE_EVERY`` calls and at each round's end, and each timing is also given
    relative to the reference's latency, interpolated at its moment: what remains of drift
    is what changes within a few seconds.
    """
    rng = np.random.default_rng(seed)
    shape = (rounds, len(calls))
    ms, iqr, runs, moments = np.empty(shape), np.empty(shape), np.empty(shape), np.empty(shape)
    reference_at: list[float] = []
    reference_ms: list[float] = []

    def time_reference() -> None:
        begin = time.perf_counter()
        reference_ms.append(time_calls(reference, settings).median_ms)
        reference_at.append((begin + time.perf_counter()) / 2)

    with torch_threads(settings):
        for r in range(rounds):
            if reference is not None and r == 0:
                time_reference()
            order = rng.permutation(len(calls))
            for done, i in enumerate(order, start=1):
                begin = time.perf_counter()
                timing = time_calls(calls[i], settings)
                moments[r, i] = (begin + time.perf_counter()) / 2
                ms[r, i], iqr[r, i], runs[r, i] = timing.median_ms, timing.iqr_ms, timing.runs
                advance(1)
                if reference is not None and (done % REFERENCE_EVERY == 0 or done == len(order)):
                    time_reference()
    if reference is None:
        return RoundTimings(ms, iqr, runs)
    local = np.interp(moments, reference_at, reference_ms)
    return RoundTimings(ms, iqr, runs, ms / local, np.asarray(reference_ms))


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(settings: LatencySettings) -> dict[str, Any]:
    """Where and how timings were taken: enough to tell whether two numbers are comparable."""
    if settings.backend == "onnxruntime":
        import onnxruntime

        runtime = f"onnxruntime {onnxruntime.__version__}"
    else:
        runtime = f"torch {torch.__version__}"
    return {
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "runtime": runtime,
        "threads": settings.threads,
        "batch_size": settings.batch_size,
    }


def comparable(env: dict[str, Any]) -> dict[str, Any]:
    """The part of an environment that timings depend on: the OS string carries the kernel
    build, which changes with updates that do not move timings."""
    return {k: v for k, v in env.items() if k != "os"}
