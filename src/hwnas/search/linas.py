"""LINAS: lightweight iterative NAS with predictors in the loop (after Intel's DyNAS-T).

Each round fits one predictor per objective on everything evaluated so far, screens a large
candidate pool on the predictors alone (early on, every unseen arch when the space is small
enough to enumerate; then thousands of one- and two-step mutants of the evaluated front's
first layers plus random archs), and sends the candidates with the largest expected
hypervolume improvement for real evaluation.

What makes it sample-efficient where plain surrogate screening is not:
- predictors give distributions (``NoisyForest``): tree disagreement plus the irreducible
  noise measured out-of-bag, so an objective that is mostly noise in the region that matters
  (latency tables often are) is treated as such instead of trusted blindly;
- the acquisition is Monte-Carlo expected hypervolume improvement over the evaluated front,
  and a batch is chosen greedily, each pick added to every sample's front as a fantasy, so a
  batch spreads along the front instead of piling up in one spot;
- batches start small (2, then 5, then 10) so the predictors improve early, when it counts.
Objectives are scaled by the best value seen and a reference point at a quantile of the
*predicted* objectives over the space (the worst by default; the median when only archs
better than a typical one matter), without knowing the space's true statistics.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hwnas.pareto import Objective, crowding_distance, non_dominated_sort, pareto_mask
from hwnas.predictors import NoisyForest
from hwnas.search.base import Searcher
from hwnas.space import Arch, Space


class LINAS(Searcher):
    def __init__(
        self,
        space: Space,
        objectives: Sequence[Objective],
        seed: int = 0,
        initial: int = 10,
        samples: int = 32,
        screen: int = 2000,
        noise_after: int = 50,
        exhaustive_limit: int = 50_000,
        exhaustive_until: int = 100,
        pool_size: int = 3000,
        reference_sample: int = 2000,
        reference_quantile: float = 1.0,
    ) -> None:
        """``reference_quantile`` places the hypervolume reference point at that quantile of
        the predicted objectives over the space: 1.0 values the whole front, 0.5 only archs
        better than a typical one in every objective (what the NAS-Bench-201 score counts)."""
        super().__init__(space, objectives, seed)
        self.initial = initial
        self.samples = samples
        self.screen = screen
        self.noise_after = noise_after
        self.pool_size = pool_size
        self.exhaustive_until = exhaustive_until
        self.reference_quantile = reference_quantile
        self._last_reference: np.ndarray | None = None
        self._all: list[Arch] | None = None
        self._all_features: np.ndarray | None = None
        if space.size() <= exhaustive_limit:
            self._all = space.enumerate()
            self._all_features = space.features(self._all)
        # a fixed random sample of the space, on which the predicted median is taken
        self._reference = space.features([space.sample(self.rng) for _ in range(reference_sample)])

    @property
    def batch_size(self) -> int:  # type: ignore[override]
        n = len(self.archs)
        return 2 if n < 50 else 5 if n < 200 else 10

    # -- one round ----------------------------------------------------------------------
    def _propose(self, n: int) -> list[Arch]:
        valid = np.nonzero(np.isfinite(self.violation))[0]
        feasible = self.violation[valid] == 0
        if len(valid) < self.initial or not feasible.any():
            corners = [a for a in self.space.corners() if self.is_new(a)][:n]
            return corners + self.fresh(
                n - len(corners), lambda: self.space.sample(self.rng), taken=corners
            )
        pool, features = self._candidates()
        if not pool:
            return []
        F = self.F[valid]
        models = [self._fit(valid, F[:, j], j) for j in range(F.shape[1])]
        best = F.min(axis=0)
        reference = np.array(
            [
                np.quantile(
                    m.predict_distribution(self._reference, False)[0], self.reference_quantile
                )
                for m in models
            ]
        )
        self._last_reference = reference
        scale = np.where(reference > best, reference - best, np.maximum(np.abs(best), 1.0))
        noisy = len(valid) >= self.noise_after
        dists = [m.predict_distribution(features, with_noise=noisy) for m in models]
        mean = (np.column_stack([d[0] for d in dists]) - best) / scale
        spread = np.column_stack([d[1] for d in dists]) / scale
        feasible_F = F[feasible]
        front = (feasible_F[pareto_mask(feasible_F)] - best) / scale
        limits = np.array(
            [np.inf if o.limit is None else o.to_min(o.limit) for o in self.objectives]
        )
        surely_violating = np.any(mean - 2 * spread > ((limits - best) / scale), axis=1)
        mean[surely_violating] = np.inf  # never preferred, whatever the sampling says
        if F.shape[1] == 2:
            picks = self._expected_improvement_batch(front, mean, spread, n)
        else:
            picks = list(_rank_and_crowd(mean)[:n])
        chosen = [pool[i] for i in picks]
        top_up = self.fresh(n - len(chosen), lambda: self.space.sample(self.rng), 0, chosen)
        return chosen + top_up

    def _fit(self, valid: np.ndarray, y: np.ndarray, j: int) -> NoisyForest:
        """Targets worse than 1.5x the gap to the reference point (the previous round's) are
        clipped, so broken archs do not dominate the fit; out-of-bag noise is measured only
        where targets beat the reference: the region the search is scored on."""
        X = self.space.features([self.archs[i] for i in valid])
        best = y.min()
        median = self._last_reference[j] if self._last_reference is not None else np.median(y)
        clipped = np.minimum(y, best + 1.5 * (median - best)) if median > best else y
        seed = int(self.rng.integers(2**31))
        return NoisyForest(seed=seed).fit(X, clipped, noise_below=median)

    def _candidates(self) -> tuple[list[Arch], np.ndarray]:
        """Every unseen arch while the predictors are young (if the space is small enough),
        then mutants of the front: locality finds the lucky archs that no predictor can."""
        if self._all is not None and len(self.archs) < self.exhaustive_until:
            keep = [i for i, a in enumerate(self._all) if self.is_new(a)]
            return [self._all[i] for i in keep], self._all_features[keep]
        return self._mutant_pool()

    def _mutant_pool(self) -> tuple[list[Arch], np.ndarray]:
        """One- and two-step mutants of the evaluated front's first layers, plus random archs."""
        feasible = np.nonzero(self.violation == 0)[0]
        layers = non_dominated_sort(self.F[feasible])[:3]
        parents = [self.archs[i] for i in feasible[np.concatenate(layers)]]
        pool: dict[str, Arch] = {}
        for _ in range(self.pool_size):
            arch = parents[self.rng.integers(len(parents))]
            for _ in range(1 + int(self.rng.random() < 0.5)):
                arch = self.space.mutate(arch, self.rng, rate=0.0)
            if self.is_new(arch):
                pool.setdefault(arch.key, arch)
        for _ in range(self.pool_size // 3):
            arch = self.space.sample(self.rng)
            if self.is_new(arch):
                pool.setdefault(arch.key, arch)
        archs = list(pool.values())
        return archs, self.space.features(archs) if archs else np.zeros((0, 0))

    def _expected_improvement_batch(
        self, front: np.ndarray, mean: np.ndarray, spread: np.ndarray, n: int
    ) -> list[int]:
        """Greedy batch by Monte-Carlo expected hypervolume improvement with fantasies."""
        optimistic = _hypervolume_gain(front, mean - 2 * spread)
        screened = np.nonzero(optimistic > 0)[0]
        screened = screened[np.argsort(-optimistic[screened], kind="stable")[: self.screen]]
        if len(screened) == 0:
            return []
        draws = mean[screened] + spread[screened] * self.rng.standard_normal(
            (self.samples, len(screened), 2)
        )
        fronts = [front] * self.samples
        picks: list[int] = []
        for _ in range(min(n, len(screened))):
            gain = np.mean([_hypervolume_gain(f, d) for f, d in zip(fronts, draws, strict=True)], 0)
            gain[picks] = -1.0
            best = int(np.argmax(gain))
            if gain[best] <= 0:
                break
            picks.append(best)
            fronts = [_add_to_front(f, d[best]) for f, d in zip(fronts, draws, strict=True)]
        return [int(screened[i]) for i in picks]


def _add_to_front(front: np.ndarray, point: np.ndarray) -> np.ndarray:
    merged = np.vstack([front, point])
    return merged[pareto_mask(merged)]


def _hypervolume_gain(front: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Hypervolume each 2-D point would add to ``front`` (reference (1, 1)), vectorised.

    The front's staircase, clipped to each point's dominated box, is integrated column by
    column; the gain is the box minus what the front already covers.
    """
    order = np.argsort(front[:, 0], kind="stable")
    fx, fy = front[order, 0], front[order, 1]
    a, b = points[:, :1], points[:, 1:2]
    x = np.minimum(np.maximum(fx, a), 1.0)
    y = np.maximum(np.minimum.accumulate(fy)[None, :], b)
    next_x = np.concatenate([x[:, 1:], np.ones_like(x[:, :1])], axis=1)
    covered = np.sum(np.clip(next_x - x, 0, None) * np.clip(1 - y, 0, None), axis=1)
    box = np.clip(1 - points[:, 0], 0, None) * np.clip(1 - points[:, 1], 0, None)
    return np.clip(box - covered, 0, None)


def _rank_and_crowd(F: np.ndarray) -> np.ndarray:
    """Indices ordered by predicted front, then by crowding (most isolated first)."""
    rank = np.empty(len(F))
    crowd = np.empty(len(F))
    for r, members in enumerate(non_dominated_sort(F)):
        rank[members] = r
        crowd[members] = crowding_distance(F[members])
    return np.lexsort((-crowd, rank))
