"""Regularized (aging) evolution, single objective (Real et al., 2019).

Optimises the first objective; limits on any objective and ``constraints`` on other metrics
act as constraints (a violating arch always loses a tournament to a feasible one). The
population is the most recent archs, so old lucky ones age out instead of dominating forever.
"""

from __future__ import annotations

from collections.abc import Sequence

from hwnas.pareto import Objective
from hwnas.search.base import Searcher
from hwnas.space import Arch, Space


class RegularizedEvolution(Searcher):
    def __init__(
        self,
        space: Space,
        objectives: Sequence[Objective],
        seed: int = 0,
        population_size: int = 50,
        sample_size: int = 10,
        constraints: Sequence[Objective] = (),
    ) -> None:
        super().__init__(space, objectives, seed, constraints)
        self.population_size = population_size
        self.sample_size = sample_size
        self.batch_size = max(1, sample_size // 2)

    def _propose(self, n: int) -> list[Arch]:
        if len(self.archs) < self.population_size:
            return self.fresh(n, lambda: self.space.sample(self.rng))
        return self.fresh(n, self._mutate_tournament_winner)

    def _mutate_tournament_winner(self) -> Arch:
        start = len(self.archs) - self.population_size
        contenders = start + self.rng.choice(self.population_size, self.sample_size, replace=False)
        violation, first = self.violation, self.F[:, 0]
        winner = min(contenders, key=lambda i: (violation[i], first[i]))
        return self.space.mutate(self.archs[winner], self.rng)
