"""Per-layer latency lookup table: measure each layer once, estimate any arch by summing.

Each layer is timed as its own tiny model, so each timing also holds the runtime's fixed
cost of one call (feeding inputs, fetching outputs; ~5 us for ONNX Runtime here, as much as
a small layer). The table measures that cost on a one-op model and counts it once per
network instead of once per layer: without this the sum overestimates small networks by
half.

Layers are timed in several rounds, each in a fresh random order, and the median round
kept (``time_rounds``): a burst of load on a shared machine then spoils one round of a few
layers instead of every timing of one layer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from hwnas.families.base import Layer
from hwnas.hardware.measure import prepare, time_rounds
from hwnas.hardware.settings import LatencySettings
from hwnas.progress import Progress, SilentProgress


class MissingLayer(KeyError):
    """The table has no entry for a layer: it was built for another space."""


@dataclass(frozen=True)
class LatencyTable:
    overhead_ms: float
    entries: Mapping[str, float] = field(default_factory=dict)

    def predict(self, layers: Sequence[Layer]) -> float:
        """Estimated latency (ms) of a network running ``layers`` in sequence."""
        total = self.overhead_ms
        for layer in layers:
            try:
                total += self.entries[layer.key] - self.overhead_ms
            except KeyError:
                raise MissingLayer(layer.key) from None
        return total


def build_table(
    layers: Sequence[Layer],
    make_module: Callable[[Layer], torch.nn.Module],
    settings: LatencySettings,
    rounds: int = 5,
    seed: int = 0,
    progress: Progress | None = None,
) -> tuple[LatencyTable, dict[str, float]]:
    """Time every layer in ``rounds`` rounds; returns the table and its noise figures."""
    progress = progress or SilentProgress()
    batch = settings.batch_size
    calls = [prepare(make_module(layer), layer.example(batch), settings) for layer in layers]
    first = layers[0].input_shape  # the network's input: where a whole network pays overhead
    calls.append(prepare(torch.nn.ReLU(), torch.randn(batch, *first), settings))
    task = progress.task("lookup table", rounds * len(calls))
    timings = time_rounds(calls, settings, rounds, seed, task.advance)
    task.close()
    medians = np.median(timings, axis=0)
    deviation = np.median(np.abs(timings - medians) / medians, axis=0)[:-1]
    # A layer's timing holds the call overhead, so the overhead is at most the cheapest
    # layer's: on a noisy machine with few rounds the one-op model can time slower than a
    # tiny layer, and a negative layer cost would let a sum fall to zero or below.
    overhead = min(float(medians[-1]), float(medians[:-1].min()))
    table = LatencyTable(
        overhead,
        {layer.key: float(ms) for layer, ms in zip(layers, medians[:-1], strict=True)},
    )
    noise = {
        "rounds": rounds,
        "layer_round_deviation_median": float(np.median(deviation)),
        "layer_round_deviation_max": float(np.max(deviation)),
    }
    return table, noise
