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
- the acquisition is Monte-Carlo expected hypervolume improvement over the evaluated front
  (exact improvement per sample, vectorised, in two or three objectives; with one or more
  than three, the candidates are ranked by predicted front and crowding instead), and a
  batch is chosen greedily, each pick added to every sample's front as a fantasy, so a
  batch spreads along the front instead of piling up in one spot;
- batches start small (2, then 5, then 10) so the predictors improve early, when it counts.
Objectives are scaled by the best value seen and a reference point at a quantile of the
*predicted* objectives over the space (the worst by default; the median when only archs
better than a typical one matter), without knowing the space's true statistics.

Constraints (metrics with a limit that are not optimised, such as memory) get a predictor
each too, fitted on the valid archs that report the metric: a forest on the residuals of a
ridge trend, since a limit usually sits in a tail of a cost metric, where a forest alone never
reaches. A candidate beyond a limit even at two spreads is dropped, and so is one whose
predicted value is beyond it while others are predicted within all limits (when none is, the
closest to feasible are sent). The expected improvement only counts the Monte-Carlo samples in
which every constraint holds, so an uncertain candidate is worth its chance of being feasible.
While nothing evaluated is feasible, after the initial archs, the candidates with the smallest
predicted violation are sent instead of random ones. Without constraints none of this runs,
and the random stream is the one it always was.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy.special import ndtr

from hwnas.pareto import Objective, crowding_distance, non_dominated_sort, pareto_mask
from hwnas.predictors import NoisyForest, TrendForest
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
        climb_steps: int = 4,
        climb_starts: int = 20,
        constraints: Sequence[Objective] = (),
    ) -> None:
        """``reference_quantile`` places the hypervolume reference point at that quantile of
        the predicted objectives over the space: 1.0 values the whole front, 0.5 only archs
        better than a typical one in every objective (what the NAS-Bench-201 score counts).

        ``climb_steps`` and ``climb_starts``: in a space too large to list, each round
        climbs the predictors from the pool's ``climb_starts`` most promising candidates,
        one choice at a time, for up to ``climb_steps`` steps (0: no climbing)."""
        super().__init__(space, objectives, seed, constraints)
        self.initial = initial
        self.samples = samples
        self.screen = screen
        self.noise_after = noise_after
        self.pool_size = pool_size
        self.exhaustive_until = exhaustive_until
        self.reference_quantile = reference_quantile
        self.climb_steps, self.climb_starts = climb_steps, climb_starts
        self._last_reference: np.ndarray | None = None
        self._archive_features: np.ndarray | None = None
        self._all: list[Arch] | None = None
        self._all_features: np.ndarray | None = None
        if space.size() <= exhaustive_limit:
            self._all = space.enumerate()
            self._all_features = space.features(self._all)
        # a fixed random sample of the space, on which the predicted median is taken
        self._reference = space.features([space.sample(self.rng) for _ in range(reference_sample)])

    def _after_tell(self, new: list[int]) -> None:
        """Features of told archs are computed once: every round's models train on them."""
        rows = self.space.features([self.archs[i] for i in new])
        previous = self._archive_features
        self._archive_features = rows if previous is None else np.vstack([previous, rows])

    @property
    def batch_size(self) -> int:  # type: ignore[override]
        n = len(self.archs)
        return 2 if n < 50 else 5 if n < 200 else 10

    # -- one round ----------------------------------------------------------------------
    def _propose(self, n: int) -> list[Arch]:
        valid = np.nonzero(np.isfinite(self.violation))[0]
        feasible = self.violation[valid] == 0
        if len(valid) < self.initial or not feasible.any():
            limited = self.constraints or any(o.limit is not None for o in self.objectives)
            if limited and len(valid) >= self.initial:
                return self._toward_feasible(valid, n)
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
        feasible_F = F[feasible]
        front = (feasible_F[pareto_mask(feasible_F)] - best) / scale

        def predicted(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            """Scaled predicted mean and spread of each objective for feature ``rows``."""
            dists = [m.predict_distribution(rows, with_noise=noisy) for m in models]
            return ((np.column_stack([d[0] for d in dists]) - best) / scale,
                    np.column_stack([d[1] for d in dists]) / scale)  # fmt: skip

        if self._all is None and self.climb_steps and F.shape[1] in (2, 3):
            pool, features, mean, spread = self._climb(pool, features, front, predicted)
        else:
            mean, spread = predicted(features)
        limits = np.array(
            [np.inf if o.limit is None else o.to_min(o.limit) for o in self.objectives]
        )
        surely_violating = np.any(mean - 2 * spread > ((limits - best) / scale), axis=1)
        margin = None
        limited = np.isfinite(limits)
        if self.constraints or limited.any():
            # one margin for every limit: constraints' models, then the limited objectives'
            excess, constraint_spread = self._constraint_margin(valid, features, noisy)
            scaled_limits = ((limits - best) / scale)[limited]
            excess = np.column_stack([excess, mean[:, limited] - scaled_limits])
            constraint_spread = np.column_stack([constraint_spread, spread[:, limited]])
            margin = excess, constraint_spread
            surely_violating |= np.any(excess - 2 * constraint_spread > 0, axis=1)
            likely = ~surely_violating & np.all(excess <= 0, axis=1)
            if not likely.any():  # no candidate is predicted feasible: go for the closest
                order = _least_violating(excess, constraint_spread)
                chosen = [pool[i] for i in order[:n]]
                top_up = self.fresh(n - len(chosen), lambda: self.space.sample(self.rng), 0, chosen)
                return chosen + top_up
            surely_violating |= ~likely
        mean[surely_violating] = np.inf  # never preferred, whatever the sampling says
        if F.shape[1] in (2, 3):
            picks = self._expected_improvement_batch(front, mean, spread, n, margin)
        else:
            picks = list(_rank_and_crowd(mean)[:n])
        if margin is not None and len(picks) < n:
            # nothing else promises improvement: the best predicted of the likely feasible
            likely_at = np.nonzero(likely)[0]
            taken = set(picks)
            ranked = [int(i) for i in likely_at[_rank_and_crowd(mean[likely_at])]]
            picks += [i for i in ranked if i not in taken][: n - len(picks)]
        chosen = [pool[i] for i in picks]
        top_up = self.fresh(n - len(chosen), lambda: self.space.sample(self.rng), 0, chosen)
        return chosen + top_up

    def _fit(self, valid: np.ndarray, y: np.ndarray, j: int) -> NoisyForest:
        """Targets worse than 1.5x the gap to the reference point (the previous round's) are
        clipped, so broken archs do not dominate the fit; out-of-bag noise is measured only
        where targets beat the reference: the region the search is scored on."""
        X = self._archive_features[valid]
        best = y.min()
        median = self._last_reference[j] if self._last_reference is not None else np.median(y)
        clipped = np.minimum(y, best + 1.5 * (median - best)) if median > best else y
        seed = int(self.rng.integers(2**31))
        return NoisyForest(seed=seed).fit(X, clipped, noise_below=median)

    # -- constraints -------------------------------------------------------------------
    def _constraint_margin(
        self, valid: np.ndarray, features: np.ndarray, noisy: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """Predicted excess over each constraint's limit (minimisation form; <= 0 feasible)
        and its spread, per candidate. A constraint that fewer than two valid archs report
        predicts nothing: excess -inf, spread 0 (it neither filters nor weighs)."""
        excess = np.full((len(features), len(self.constraints)), -np.inf)
        spread = np.zeros_like(excess)
        C = self.C[valid]
        X = self._archive_features[valid]
        for j, limit in enumerate(self.constraint_limits):
            known = np.isfinite(C[:, j])
            if known.sum() < 2:
                continue
            seed = int(self.rng.integers(2**31))
            model = TrendForest(seed).fit(X[known], C[known, j])
            mean, sd = model.predict_distribution(features, with_noise=noisy)
            excess[:, j], spread[:, j] = mean - limit, sd
        return excess, spread

    def _toward_feasible(self, valid: np.ndarray, n: int) -> list[Arch]:
        """Nothing feasible yet: send the candidates with the smallest predicted violation
        (constraints and objective limits, summed as the archive's violation is), the likelier
        feasible first among equals, rather than spend the budget on random archs."""
        least = valid[np.argsort(self.violation[valid], kind="stable")[:10]]
        pool, features = self._candidates(parents=least)
        if not pool:
            return []
        noisy = len(valid) >= self.noise_after
        excess, spread = self._constraint_margin(valid, features, noisy)
        F = self.F[valid]
        X = self._archive_features[valid]
        for j, o in enumerate(self.objectives):
            if o.limit is None:
                continue
            seed = int(self.rng.integers(2**31))
            mean, sd = TrendForest(seed).fit(X, F[:, j]).predict_distribution(features, noisy)
            excess = np.column_stack([excess, mean - o.to_min(o.limit)])
            spread = np.column_stack([spread, sd])
        chosen = [pool[i] for i in _least_violating(excess, spread)[:n]]
        top_up = self.fresh(n - len(chosen), lambda: self.space.sample(self.rng), 0, chosen)
        return chosen + top_up

    # -- candidates ----------------------------------------------------------------------
    def _candidates(self, parents: np.ndarray | None = None) -> tuple[list[Arch], np.ndarray]:
        """Every unseen arch while the predictors are young (if the space is small enough),
        then mutants of the front: locality finds the lucky archs that no predictor can.
        ``parents`` (archive indices) replace the front as the archs to mutate."""
        if self._all is not None and len(self.archs) < self.exhaustive_until:
            keep = [i for i, a in enumerate(self._all) if self.is_new(a)]
            return [self._all[i] for i in keep], self._all_features[keep]
        return self._mutant_pool(parents)

    def _mutant_pool(self, parents: np.ndarray | None = None) -> tuple[list[Arch], np.ndarray]:
        """One- and two-step mutants of the evaluated front's first layers (or of
        ``parents``), plus random archs."""
        if parents is None:
            feasible = np.nonzero(self.violation == 0)[0]
            layers = non_dominated_sort(self.F[feasible])[:3]
            parents = feasible[np.concatenate(layers)]
        parents = [self.archs[i] for i in parents]
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

    def _climb(
        self,
        pool: list[Arch],
        features: np.ndarray,
        front: np.ndarray,
        predicted: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
    ) -> tuple[list[Arch], np.ndarray, np.ndarray, np.ndarray]:
        """The pool grown by local search on the predictors (SMAC's way with spaces too
        large to list): from the candidates whose predicted mean adds the most hypervolume,
        every one-choice neighbour is predicted, and the best of those start the next step.
        A pool of one- and two-step mutants only reaches archs next to the evaluated ones;
        in 10^16 archs a round may then never see where the predictors point. The mean, not
        an optimistic bound: climbing the bound chases the forests' uncertainty far from
        any data (it halved the hypervolume on the chain benchmark it was tried on).
        Returns the grown pool, its features and their predicted means and spreads, each
        row predicted once."""
        seen = {a.key for a in pool}
        starts, rows = pool, features
        mean, spread = predicted(rows)
        means, spreads = [mean], [spread]
        for _ in range(self.climb_steps):
            gain = _hypervolume_gain(front, mean)
            top = np.argsort(-gain, kind="stable")[: self.climb_starts]
            grown = []
            for i in top[gain[top] > 0]:
                for arch in self.space.neighbours(starts[i]):
                    if arch.key not in seen and self.is_new(arch):
                        seen.add(arch.key)
                        grown.append(arch)
            if not grown:
                break
            starts, rows = grown, self.space.features(grown)
            pool, features = pool + grown, np.vstack([features, rows])
            mean, spread = predicted(rows)
            means.append(mean)
            spreads.append(spread)
        return pool, features, np.vstack(means), np.vstack(spreads)

    def _expected_improvement_batch(
        self,
        front: np.ndarray,
        mean: np.ndarray,
        spread: np.ndarray,
        n: int,
        margin: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> list[int]:
        """Greedy batch by Monte-Carlo expected hypervolume improvement with fantasies.

        With constraint ``margin`` (predicted excess and spread), a sample's gain counts only
        where its drawn constraint values are all within the limits, and only then does the
        pick join that sample's front."""
        optimistic = _hypervolume_gain(front, mean - 2 * spread)
        if margin is not None:
            optimistic = optimistic * np.prod(_probability_below_zero(*margin), axis=1)
        screened = np.nonzero(optimistic > 0)[0]
        screened = screened[np.argsort(-optimistic[screened], kind="stable")[: self.screen]]
        if len(screened) == 0:
            return []
        draws = mean[screened] + spread[screened] * self.rng.standard_normal(
            (self.samples, *mean[screened].shape)
        )
        holds = None
        if margin is not None:
            excess, sd = margin[0][screened], margin[1][screened]
            noise = self.rng.standard_normal((self.samples, *excess.shape))
            holds = np.all(excess + sd * noise <= 0, axis=2)  # (samples, screened)
        fronts = [front] * self.samples
        picks: list[int] = []
        for _ in range(min(n, len(screened))):
            gains = [_hypervolume_gain(f, d) for f, d in zip(fronts, draws, strict=True)]
            if holds is not None:
                gains = [g * h for g, h in zip(gains, holds, strict=True)]
            gain = np.mean(gains, 0)
            gain[picks] = -1.0
            best = int(np.argmax(gain))
            if gain[best] <= 0:
                break
            picks.append(best)
            fronts = [
                _add_to_front(f, d[best]) if holds is None or holds[s, best] else f
                for s, (f, d) in enumerate(zip(fronts, draws, strict=True))
            ]
        return [int(screened[i]) for i in picks]


def _least_violating(excess: np.ndarray, spread: np.ndarray) -> np.ndarray:
    """Candidate indices by predicted violation (the summed positive excess), the likelier
    feasible first among equals (such as all those predicted feasible)."""
    violation = np.sum(np.maximum(excess, 0.0), axis=1)
    feasible = np.prod(_probability_below_zero(excess, spread), axis=1)
    return np.lexsort((-feasible, violation))


def _probability_below_zero(mean: np.ndarray, spread: np.ndarray) -> np.ndarray:
    """Elementwise P(X <= 0) for X ~ Normal(mean, spread); a step where the spread is 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(spread > 0, -mean / np.where(spread > 0, spread, 1.0), 0.0)
    return np.where(spread > 0, ndtr(z), (mean <= 0).astype(float))


def _add_to_front(front: np.ndarray, point: np.ndarray) -> np.ndarray:
    merged = np.vstack([front, point])
    return merged[pareto_mask(merged)]


def _hypervolume_gain(front: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Hypervolume each point would add to ``front`` (reference 1 in every objective),
    vectorised over the points, exactly, in two or three objectives."""
    if points.shape[1] == 2:
        return _gain_2d(front, points)
    return _gain_3d(front, points)


def _gain_2d(front: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The front's staircase, clipped to each point's dominated box, is integrated column by
    column; the gain is the box minus what the front already covers."""
    order = np.argsort(front[:, 0], kind="stable")
    fx, fy = front[order, 0], front[order, 1]
    a, b = points[:, :1], points[:, 1:2]
    x = np.minimum(np.maximum(fx, a), 1.0)
    y = np.maximum(np.minimum.accumulate(fy)[None, :], b)
    next_x = np.concatenate([x[:, 1:], np.ones_like(x[:, :1])], axis=1)
    covered = np.sum(np.clip(next_x - x, 0, None) * np.clip(1 - y, 0, None), axis=1)
    box = np.clip(1 - points[:, 0], 0, None) * np.clip(1 - points[:, 1], 0, None)
    return np.clip(box - covered, 0, None)


GAIN_3D_CHUNK = 256  # points per block: a block holds points x columns floats at once


def _gain_3d(front: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The (x, y) plane is cut into columns at the front's coordinates. Inside a column the
    front dominates exactly the points above one height, the least third objective of the
    front's points below and left of the column's corner (a two-way running minimum), so
    the region no front point dominates is one box per column, and a point's gain is its
    dominated box's overlap with those boxes: (front size + 1)^2 products per point."""
    front = front[np.all(front < 1.0, axis=1)]  # a point beyond the reference adds nothing
    if len(front) == 0:
        return np.prod(np.clip(1.0 - points, 0, None), axis=1)
    xs, ys = np.unique(front[:, 0]), np.unique(front[:, 1])
    x_low, x_high = np.concatenate([[-np.inf], xs]), np.append(xs, 1.0)
    y_low, y_high = np.concatenate([[-np.inf], ys]), np.append(ys, 1.0)
    height = np.ones((len(x_low), len(y_low)))
    at = (np.searchsorted(xs, front[:, 0]) + 1, np.searchsorted(ys, front[:, 1]) + 1)
    np.minimum.at(height, at, front[:, 2])
    height = np.minimum.accumulate(np.minimum.accumulate(height, axis=0), axis=1)
    gains = np.empty(len(points))
    for start in range(0, len(points), GAIN_3D_CHUNK):
        q = points[start : start + GAIN_3D_CHUNK]
        wide = np.clip(x_high - np.maximum(x_low, q[:, :1]), 0, None)
        deep = np.clip(y_high - np.maximum(y_low, q[:, 1:2]), 0, None)
        tall = np.clip(height[None] - q[:, 2, None, None], 0, None)
        gains[start : start + GAIN_3D_CHUNK] = np.einsum("mi,mj,mij->m", wide, deep, tall)
    return gains


def _rank_and_crowd(F: np.ndarray) -> np.ndarray:
    """Indices ordered by predicted front, then by crowding (most isolated first)."""
    rank = np.empty(len(F))
    crowd = np.empty(len(F))
    for r, members in enumerate(non_dominated_sort(F)):
        rank[members] = r
        crowd[members] = crowding_distance(F[members])
    return np.lexsort((-crowd, rank))
