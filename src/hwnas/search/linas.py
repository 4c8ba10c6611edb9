"""LINAS: lightweight iterative NAS with predictors in the loop (after Intel's DyNAS-T).

Each round fits one predictor per objective on everything evaluated so far, searches the
predictors alone over many candidates (every unseen arch when the space is small enough,
else a multi-objective evolution of thousands of candidates), and sends the most promising
unseen candidates for real evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hwnas.pareto import Objective, crowding_distance, non_dominated_sort
from hwnas.predictors import make_predictor
from hwnas.search.base import Searcher
from hwnas.space import Arch, Space


class LINAS(Searcher):
    def __init__(
        self,
        space: Space,
        objectives: Sequence[Objective],
        seed: int = 0,
        initial: int = 10,
        batch: int = 10,
        predictor: str = "trees",
        exhaustive_limit: int = 50_000,
        inner_population: int = 100,
        inner_generations: int = 50,
    ) -> None:
        super().__init__(space, objectives, seed)
        self.initial = initial
        self.batch_size = batch
        self.predictor = predictor
        self.inner_population = inner_population
        self.inner_generations = inner_generations
        self._all: list[Arch] | None = None
        self._all_features: np.ndarray | None = None
        if space.size() <= exhaustive_limit:
            self._all = space.enumerate()
            self._all_features = space.features(self._all)

    def _propose(self, n: int) -> list[Arch]:
        valid = np.nonzero(np.isfinite(self.violation))[0]
        if len(valid) < self.initial:
            return self.fresh(n, lambda: self.space.sample(self.rng))
        models = self._fit(valid)
        pool, features = self._candidates(models)
        if not pool:
            return self.fresh(n, lambda: self.space.sample(self.rng))
        predicted = np.column_stack([m.predict(features) for m in models])
        return [pool[i] for i in self._select(predicted, n)]

    def _fit(self, valid: np.ndarray) -> list:
        X = self.space.features([self.archs[i] for i in valid])
        F = self.F[valid]
        seed = int(self.rng.integers(2**31))
        return [make_predictor(self.predictor, seed).fit(X, F[:, j]) for j in range(F.shape[1])]

    def _candidates(self, models: list) -> tuple[list[Arch], np.ndarray]:
        if self._all is not None:
            keep = [i for i, a in enumerate(self._all) if self.is_new(a)]
            return [self._all[i] for i in keep], self._all_features[keep]
        return self._inner_search(models)

    def _inner_search(self, models: list) -> tuple[list[Arch], np.ndarray]:
        """NSGA-II on the predictors alone; every unseen candidate it produces is returned."""
        seen: dict[str, Arch] = {}
        ranked = self.best_first(np.arange(len(self.archs)))
        population = [self.archs[i] for i in ranked[: self.inner_population]]
        for _ in range(self.inner_generations):
            children = []
            for _ in range(self.inner_population):
                a, b = self.rng.choice(len(population), 2)
                child = self.space.crossover(population[a], population[b], self.rng)
                children.append(self.space.mutate(child, self.rng))
            for arch in children:
                if self.is_new(arch):
                    seen.setdefault(arch.key, arch)
            union = list({a.key: a for a in population + children}.values())
            predicted = np.column_stack([m.predict(self.space.features(union)) for m in models])
            order = _rank_and_crowd(predicted)
            population = [union[i] for i in order[: self.inner_population]]
        pool = list(seen.values())
        return pool, self.space.features(pool) if pool else np.zeros((0, 0))

    def _select(self, predicted: np.ndarray, n: int) -> list[int]:
        return list(_rank_and_crowd(predicted)[:n])


def _rank_and_crowd(F: np.ndarray) -> np.ndarray:
    """Indices ordered by predicted front, then by crowding (most isolated first)."""
    rank = np.empty(len(F))
    crowd = np.empty(len(F))
    for r, front in enumerate(non_dominated_sort(F)):
        rank[front] = r
        crowd[front] = crowding_distance(F[front])
    return np.lexsort((-crowd, rank))
