"""NSGA-II with pymoo's integer operators and duplicate elimination against all history.

Parents are picked by binary tournaments (feasibility, front rank, crowding); offspring come
from simulated binary crossover and polynomial mutation with rounding on the option-index
genome, pymoo's stock operators for integer problems. Ordered option indices give these
operators a sense of "nearby" that uniform operators lack. An offspring already evaluated or
pending is discarded, so every evaluation is new. Survival keeps the best
``population_size`` of parents and a generation of offspring; asked before a generation is
all told (evaluations in parallel), it breeds from the last population. Limits on
objectives and ``constraints`` count through the violation: a feasible arch always ranks
ahead of a violating one.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from pymoo.core.population import Population
from pymoo.core.problem import Problem
from pymoo.operators.crossover.sbx import SBX
from pymoo.operators.mutation.pm import PM
from pymoo.operators.repair.rounding import RoundingRepair

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
        crossover_eta: float = 15.0,
        mutation_eta: float = 20.0,
        constraints: Sequence[Objective] = (),
    ) -> None:
        super().__init__(space, objectives, seed, constraints)
        self.population_size = population_size
        self.batch_size = population_size
        upper = np.array([len(c.options) - 1 for c in space.choices], dtype=float)
        self._problem = Problem(n_var=len(upper), xl=np.zeros_like(upper), xu=upper, vtype=int)
        self._crossover = SBX(prob=0.9, eta=crossover_eta, vtype=float, repair=RoundingRepair())
        self._mutation = PM(eta=mutation_eta, vtype=float, repair=RoundingRepair())
        self.population = np.zeros(0, dtype=int)
        self._told_offspring: list[int] = []

    def _propose(self, n: int) -> list[Arch]:
        if len(self.population) < 2:
            return self.fresh(n, lambda: self.space.sample(self.rng))

        def stream() -> Iterator[Arch]:
            while True:
                yield from self._offspring(n)

        offspring = stream()
        return self.fresh(n, lambda: next(offspring))

    def _offspring(self, n: int) -> list[Arch]:
        ranked = self.best_first(self.population)
        genomes = self.space.to_indices([self.archs[i] for i in ranked]).astype(float)
        inactive = genomes < 0  # any value will do: decoding canonicalises them away
        genomes[inactive] = self.rng.integers(0, self._problem.xu + 1, genomes.shape)[inactive]
        matings = (n + 1) // 2
        # binary tournament on the best-first position: lower position wins
        pairs = self.rng.integers(0, len(ranked), size=(matings, 2, 2)).min(axis=2)
        parents = Population.new(X=genomes)
        children = self._crossover.do(self._problem, parents, pairs, random_state=self.rng)
        children = self._mutation.do(self._problem, children, random_state=self.rng)
        return self.space.from_indices(children.get("X").astype(int))

    def _after_tell(self, new: list[int]) -> None:
        """Survival once a generation's worth of offspring is told (all of the first
        population at once), however the results arrive: told one by one, out of order
        or as a batch, the same results give the same population."""
        self._told_offspring.extend(new)
        filling = len(self.population) + len(self._told_offspring) <= self.population_size
        if filling or len(self._told_offspring) >= self.population_size:
            pool = np.concatenate([self.population, np.asarray(self._told_offspring, int)])
            self.population = self.best_first(pool)[: self.population_size]
            self._told_offspring = []
