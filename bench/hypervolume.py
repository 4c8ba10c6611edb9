"""Exact hypervolume in three objectives: hwnas.pareto against slicing in numpy (issue 13,
point 4).

    .venv/bin/python bench/hypervolume.py

``hwnas.pareto.hypervolume`` calls moocore's compiled exact algorithm for three or more
objectives. The baseline is what hwnas did before: slice the volume along the third
objective and add up exact 2-D areas (numpy, O(n^2 log n)). Fronts are points on the unit
sphere's positive octant (every point non-dominated), reference 1.1 in each objective.
Prints JSON: for each front size, the two values, their difference and the median time of
each over repeated calls.
"""

from __future__ import annotations

import json
import time

import numpy as np

from hwnas.pareto import _hypervolume_2d, hypervolume


def sliced_3d(F: np.ndarray, ref: np.ndarray) -> float:
    """The baseline: between consecutive f3 levels the cross-section is a fixed 2-D union."""
    F = F[np.argsort(F[:, 2], kind="stable")]
    levels = np.r_[F[:, 2], ref[2]]
    return sum(
        _hypervolume_2d(F[: k + 1, :2], ref[:2]) * (levels[k + 1] - levels[k])
        for k in range(len(F))
        if levels[k + 1] > levels[k]
    )


def _median_seconds(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def main() -> None:
    rng = np.random.default_rng(0)
    ref = np.full(3, 1.1)
    for n in (20, 50, 200, 500, 2000):
        F = np.abs(rng.normal(size=(n, 3)))
        F /= np.linalg.norm(F, axis=1, keepdims=True)
        ours, baseline = hypervolume(F, ref), sliced_3d(F, ref)
        repeats = 200 if n <= 200 else 20
        fast = _median_seconds(lambda F=F: hypervolume(F, ref), repeats)
        slow = _median_seconds(lambda F=F: sliced_3d(F, ref), max(3, repeats // 10))
        print(json.dumps({"points": n, "hypervolume": ours, "sliced": baseline,
                          "difference": abs(ours - baseline), "ms": 1e3 * fast,
                          "sliced_ms": 1e3 * slow, "speedup": slow / fast}))  # fmt: skip


if __name__ == "__main__":
    main()
