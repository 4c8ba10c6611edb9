"""NSGA-II on the space's own variation operators, with duplicate elimination.

Offspring come from binary tournaments (feasibility, front rank, crowding), uniform crossover
and mutation; an offspring already evaluated or pending is replaced, so every evaluation is
new. Survival keeps the best ``population_size`` of parents and offspring.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hwnas.pareto import Objective
from hwnas.search.base import Searcher
from hwnas.space import Arch, Space


class NSGA2(Searcher):
    def __init__(
        self,
        space: Space,
        objectives: Sequence[Objective],
        seed: int = 0,
        population_size: int = 20,
        crossover_prob: float = 0.9,
    ) -> None:
        super().__init__(space, objectives, seed)
        self.population_size = population_size
        self.batch_size = population_size
        self.crossover_prob = crossover_prob
        self.population = np.zeros(0, dtype=int)

    def _propose(self, n: int) -> list[Arch]:
        if len(self.population) < 2:
            return self.fresh(n, lambda: self.space.sample(self.rng))
        ranked = self.best_first(self.population)
        position = {int(i): p for p, i in enumerate(ranked)}
        return self.fresh(n, lambda: self._offspring(ranked, position))

    def _offspring(self, ranked: np.ndarray, position: dict[int, int]) -> Arch:
        a, b = self._tournament(ranked, position), self._tournament(ranked, position)
        child = self.archs[a]
        if self.rng.random() < self.crossover_prob:
            child = self.space.crossover(self.archs[a], self.archs[b], self.rng)
        return self.space.mutate(child, self.rng)

    def _tournament(self, ranked: np.ndarray, position: dict[int, int]) -> int:
        i, j = self.rng.choice(ranked, size=2, replace=len(ranked) < 2)
        return int(i) if position[int(i)] <= position[int(j)] else int(j)

    def _after_tell(self, new: list[int]) -> None:
        pool = np.concatenate([self.population, np.asarray(new, dtype=int)])
        self.population = self.best_first(pool)[: self.population_size]
