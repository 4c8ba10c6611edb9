"""A learned combination of zero-cost proxies, after RoBoT (He et al., 2024): weights over
the proxies fitted on a few evaluated archs, then greedy exploitation of the combined score.

No single proxy ranks every space well, but each carries some signal and they fail on
different archs. RoBoT fits the weights by Bayesian optimisation; here they are fitted by
ridge regression, a comparable closed-form method: the features are each proxy's rank
quantile over every candidate (so a proxy's scale, its outliers and an undefined score,
-inf, cost nothing), the target the evaluated archs' quality ranks, and the weights are
kept non-negative, since every proxy is meant as larger-is-better (one that ranks the
wrong way, like ``plain`` on NAS-Bench-201, is weighted 0 rather than turned around on
the strength of a few points). After ``initial`` random archs, queries alternate between
a random unqueried arch and the best predicted one until ``explore_until`` archs are
known, so the fit sees the whole range of quality and not only the top; from then on
every query is the best predicted, and the weights are refitted after each.

The settings (penalty 0.1, 3 initial archs, alternation to 20) were chosen on the
published NAS-Bench-201 cifar10 proxy scores; docs/benchmarks.md reports them there and
on the data sets and scores they were not chosen on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata
from sklearn.linear_model import Ridge

PENALTY = 0.1


def rank_features(scores: np.ndarray) -> np.ndarray:
    """``scores`` (candidates x proxies, -inf allowed, NaN not) as rank quantiles in [0, 1]
    per proxy, ties sharing their mean rank."""
    scores = np.asarray(scores, dtype=float)
    if np.isnan(scores).any():
        raise ValueError("proxy scores hold NaN; undefined scores are -inf")
    if len(scores) < 2:
        return np.zeros_like(scores)
    return (rankdata(scores, axis=0) - 1) / (len(scores) - 1)


@dataclass(frozen=True)
class Combination:
    """Non-negative weights over the proxies' rank quantiles, and an intercept."""

    weights: np.ndarray
    intercept: float

    @classmethod
    def fit(cls, features: np.ndarray, quality: np.ndarray) -> Combination:
        """Ridge regression of the rank quantiles of ``quality`` on ``features``."""
        target = (rankdata(quality) - 1) / max(len(quality) - 1, 1)
        model = Ridge(alpha=PENALTY, positive=True).fit(features, target)
        return cls(np.asarray(model.coef_, dtype=float), float(model.intercept_))

    def predict(self, features: np.ndarray) -> np.ndarray:
        return features @ self.weights + self.intercept


@dataclass(frozen=True)
class CombinedSearch:
    """What ``combined_search`` queried, in order, what it observed, and the combination
    fitted on the first k evaluations, for every k from ``initial`` on (None before)."""

    queried: list[int]
    observed: list[float]
    combinations: list[Combination | None]

    def best_after(self, queries: int) -> float:
        return max(self.observed[:queries])


def combined_search(
    features: np.ndarray,
    evaluate: Callable[[int], float],
    budget: int,
    initial: int = 3,
    explore_until: int = 20,
    seed: int = 0,
) -> CombinedSearch:
    """Query ``budget`` distinct candidates (rows of ``features``, from ``rank_features``)
    by ``evaluate(index)`` -> quality (larger is better), as the module docstring says."""
    n = len(features)
    if initial < 2:
        raise ValueError(f"initial {initial}: a combination is fitted on at least 2 archs")
    if not 1 <= budget <= n:
        raise ValueError(f"budget {budget} must be between 1 and the {n} candidates")
    rng = np.random.default_rng(seed)
    queried = [int(i) for i in rng.choice(n, size=min(initial, budget), replace=False)]
    observed = [float(evaluate(i)) for i in queried]
    combinations: list[Combination | None] = [None] * (len(queried) - 1)
    while True:
        combinations.append(Combination.fit(features[queried], np.array(observed)))
        if len(queried) == budget:
            break
        if len(queried) < explore_until and len(queried) % 2 == 1:
            choice = int(rng.choice(np.setdiff1d(np.arange(n), queried)))
        else:
            predicted = combinations[-1].predict(features)
            predicted[queried] = -np.inf
            choice = int(np.argmax(predicted))
        queried.append(choice)
        observed.append(float(evaluate(choice)))
    return CombinedSearch(queried, observed, combinations)
