"""Uniform random search: the floor every other searcher must clear."""

from __future__ import annotations

from hwnas.search.base import Searcher
from hwnas.space import Arch


class RandomSearch(Searcher):
    batch_size = 10

    def _propose(self, n: int) -> list[Arch]:
        return self.fresh(n, lambda: self.space.sample(self.rng))
