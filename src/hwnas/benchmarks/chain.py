"""A generated problem far too large to enumerate, whose true front is known exactly.

Tabular benchmarks have at most tens of thousands of archs, so a searcher that screens
every one of them is never tested the way a real space (the main job's has 10^16 archs)
tests it. This problem is a network of ``layers`` layers, each choosing one of ``widths``
widths, with what real networks have:

- **accuracy** (max) is additive with diminishing returns: each layer's width adds
  ``importance * log(1 + level)``, layers differing in importance; and interacting: each
  pair of neighbouring layers adds a random term of its two widths (a bottleneck after a
  wide layer wastes it), about a third of a width step's gain;
- **latency** (ms, min) is what a layer costs: its input width times its output width
  (a convolution's multiply-adds), plus a fixed cost per layer.

Both are sums of terms of neighbouring layers, so the true front follows from a dynamic
program over the chain: for each width of layer ``i``, only the prefixes on the front of
that width's prefixes can start a front arch (what follows adds the same to each). The
normalisation's medians come from a fixed random sample of archs (the space cannot be
listed; the sample fixes them for every searcher alike).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hwnas.benchmarks.table import GroundTruth
from hwnas.errors import HwnasError
from hwnas.pareto import Objective, pareto_mask
from hwnas.space import Arch, Space, ordinal

METRICS = ("accuracy", "latency")
_STREAM = 0xC4A1  # keeps the problem's draws apart from any searcher's
MEDIAN_SAMPLE = 100_000


class ChainBenchmark:
    """``layers`` layers of ``widths`` widths each: ``widths ** layers`` archs; ``seed``
    draws the problem (not the search)."""

    def __init__(self, layers: int = 18, widths: int = 8, seed: int = 0) -> None:
        for name, value, low, high in (("layers", layers, 2, 64), ("widths", widths, 2, 32)):
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise HwnasError(f"chain benchmark: {name} must be an integer in [{low}, "
                                 f"{high}], got {value!r}")  # fmt: skip
        self.layers, self.widths, self.seed = layers, widths, seed
        self.name = f"chain-{layers}x{widths}-seed{seed}"
        self.metrics = METRICS
        self.space = Space(
            [ordinal(f"layer_{i:02d}", list(range(widths))) for i in range(layers)],
            name=self.name,
        )
        rng = np.random.default_rng([seed, _STREAM])
        importance = rng.uniform(0.2, 1.0, layers)
        self._gain = importance[:, None] * np.log1p(np.arange(widths))[None, :]  # (layers, widths)
        step = float(np.mean(np.diff(self._gain, axis=1)))
        self._pair = rng.normal(0, step / 3, (layers - 1, widths, widths))
        channels = 16 * (1 + np.arange(widths))  # a width level's channels
        scale = rng.uniform(0.5, 1.5, layers)
        self._cost = channels[None, :] * scale[:, None] / 1000  # per layer and width
        self._fixed = rng.uniform(0.05, 0.2, layers)

    # -- the evaluator contract ----------------------------------------------------------
    def evaluate(self, arch: Arch) -> dict[str, float]:
        levels = np.array([[arch.to_dict()[c.name] for c in self.space.choices]])
        accuracy, latency = self._values(levels)
        return {"accuracy": float(accuracy[0]), "latency": float(latency[0])}

    def _values(self, levels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Accuracy and latency of archs given as width levels, ``(n, layers)``."""
        rows = np.arange(self.layers)
        accuracy = self._gain[rows, levels].sum(axis=1)
        accuracy += self._pair[rows[:-1], levels[:, :-1], levels[:, 1:]].sum(axis=1)
        cost = self._cost[rows, levels]
        latency = (cost[:, :-1] * cost[:, 1:]).sum(axis=1) * 10 + self._fixed.sum()
        return 40 + 55 * accuracy / self._gain[:, -1].sum(), latency  # in the way of %

    # -- ground truth ------------------------------------------------------------------
    def truth(self, objectives: Sequence[Objective]) -> GroundTruth:
        """The exact front by dynamic programming; medians over a fixed sample of archs."""
        wanted = {("accuracy", "max"), ("latency", "min")}
        if {(o.name, o.direction) for o in objectives} != wanted or any(
            o.limit is not None for o in objectives
        ):
            raise HwnasError(f"{self.name}: scored on accuracy:max and latency:min only, "
                             "without limits")  # fmt: skip
        levels = self._front_levels()
        accuracy, latency = self._values(levels)
        by_name = {"accuracy": -accuracy, "latency": latency}
        front = np.column_stack([by_name[o.name] for o in objectives])
        rng = np.random.default_rng([self.seed, _STREAM, 1])
        sample = rng.integers(0, self.widths, (MEDIAN_SAMPLE, self.layers))
        s_accuracy, s_latency = self._values(sample)
        sampled = {"accuracy": -s_accuracy, "latency": s_latency}
        median = np.array([np.median(sampled[o.name]) for o in objectives])
        keys = {self._arch(row).key for row in levels}
        return GroundTruth(front.min(axis=0), median, front, keys)

    def _arch(self, levels: np.ndarray) -> Arch:
        return self.space.make({c.name: int(v) for c, v in zip(self.space.choices, levels,
                                                                 strict=True)})  # fmt: skip

    def _front_levels(self) -> np.ndarray:
        """Width levels of every front arch: per width of the last layer so far, the front
        of the prefixes ending there (negated accuracy and latency so far)."""
        widths, rows = self.widths, np.arange(self.widths)
        cost = self._cost
        prefixes = [rows[w : w + 1, None] for w in range(widths)]
        scores = [np.array([[-self._gain[0, w], 0.0]]) for w in range(widths)]
        for i in range(1, self.layers):
            grown_prefixes, grown_scores = [], []
            for w in range(widths):
                step_acc = self._gain[i, w] + self._pair[i - 1, :, w]  # from each previous width
                step_lat = cost[i - 1, :] * cost[i, w] * 10
                merged = np.vstack([s + [-step_acc[v], step_lat[v]] for v, s in enumerate(scores)])
                paths = np.vstack([np.column_stack([p, np.full(len(p), w)])
                                   for p in prefixes])  # fmt: skip
                keep = pareto_mask(merged)
                grown_prefixes.append(paths[keep])
                grown_scores.append(merged[keep])
            prefixes, scores = grown_prefixes, grown_scores
        every, points = np.vstack(prefixes), np.vstack(scores)
        return every[pareto_mask(points)]
