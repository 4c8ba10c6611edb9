import itertools

import numpy as np
import pytest

from helpers import OBJECTIVES, budget_for, toy_bench, toy_rows
from hwnas.benchmarks.compare import Scorer
from hwnas.benchmarks.table import TableBenchmark
from hwnas.errors import HwnasError
from hwnas.pareto import Objective
from hwnas.search import SEARCHERS, make_searcher
from hwnas.search.base import MISSING_CONSTRAINT_VIOLATION
from hwnas.store import Store
from hwnas.study import Study

NAMES = sorted(SEARCHERS)


def evaluations(name: str, seed: int, path, bench: TableBenchmark, budget: int) -> list:
    with Store(path) as store:
        return Study(
            space=bench.space,
            evaluator=bench,
            objectives=OBJECTIVES,
            searcher=make_searcher(name, bench.space, OBJECTIVES, seed=seed),
            store=store,
            run_id="r",
            budget=budget,
        ).optimize()


def run(name: str, seed: int, tmp_path, budget: int = 40, drop: int = 0) -> list[str]:
    path = tmp_path / f"{name}-{seed}-{drop}.sqlite"
    return [e.arch_key for e in evaluations(name, seed, path, toy_bench(drop=drop), budget)]


@pytest.mark.parametrize("name", NAMES)
def test_searcher_is_deterministic_for_a_seed_and_never_repeats(name, tmp_path):
    budget = budget_for(name, 40)
    first = run(name, 3, tmp_path / "a", budget)
    assert first == run(name, 3, tmp_path / "b", budget)
    assert len(first) == budget and len(set(first)) == budget
    assert first != run(name, 4, tmp_path / "c", budget)


@pytest.mark.parametrize("name", NAMES)
def test_searcher_survives_archs_missing_from_the_table(name, tmp_path):
    keys = run(name, 0, tmp_path, budget=budget_for(name, 60), drop=40)
    assert len(set(keys)) == budget_for(name, 60)


def test_searchers_stop_when_the_space_is_exhausted(tmp_path):
    for name in ("random", "nsga2", "linas"):
        keys = run(name, 0, tmp_path / name, budget=500)
        assert sorted(keys) == sorted(a.key for a in toy_bench().space.enumerate())


def additive_bench(seed: int = 0) -> TableBenchmark:
    """5^5 archs; each choice adds to accuracy and latency, a larger op costing more of both."""
    rng = np.random.default_rng(seed)
    gain, cost = rng.uniform(0, 1, (5, 5)), rng.uniform(0, 1, (5, 5))
    gain, cost = np.sort(gain, axis=1), np.sort(cost, axis=1)
    rows = []
    for combo in itertools.product(range(5), repeat=5):
        acc = sum(gain[c, o] for c, o in enumerate(combo)) + rng.normal(0, 0.05)
        lat = sum(cost[c, o] for c, o in enumerate(combo)) + rng.normal(0, 0.05)
        row = {f"c{c}": f"op{o}" for c, o in enumerate(combo)}
        rows.append({**row, "acc": str(acc), "lat": str(lat)})
    return TableBenchmark(rows, [f"c{c}" for c in range(5)], {"acc": "acc", "lat": "lat"})


def test_linas_beats_random_and_nsga2_on_a_learnable_problem(tmp_path):
    """Predictors in the loop must pay off where the objectives are learnable, on every seed."""
    bench = additive_bench()
    scorer = Scorer(bench, OBJECTIVES)

    def final_ratio(name: str, seed: int) -> float:
        done = evaluations(name, seed, tmp_path / f"{name}{seed}.sqlite", bench, budget=100)
        return scorer.curve([e.metrics for e in done])[-1]

    for seed in range(3):
        linas = final_ratio("linas", seed)
        assert linas > final_ratio("random", seed) and linas > final_ratio("nsga2", seed)


@pytest.mark.parametrize("front_size", [0, 1, 6, 40])
def test_linas_hypervolume_gain_in_three_objectives_is_exact(front_size):
    """Each candidate's gain equals moocore's hypervolume with it minus without it, for
    points beyond the reference, below the front's best values and on ties."""
    import moocore

    from hwnas.pareto import pareto_mask
    from hwnas.search.linas import _hypervolume_gain

    rng = np.random.default_rng(front_size)
    front = rng.uniform(-0.2, 1.1, (front_size * 4, 3)).round(2)
    front = front[pareto_mask(front)] if front_size else np.zeros((0, 3))
    points = np.vstack([rng.uniform(-0.4, 1.2, (300, 3)).round(2), front[:3]])
    inside = front[np.all(front < 1, axis=1)]
    ref = np.ones(3)

    def volume(pts):
        pts = pts[np.all(pts < 1, axis=1)]
        return moocore.hypervolume(pts, ref=ref) if len(pts) else 0.0

    expected = [volume(np.vstack([inside, q])) - volume(inside) for q in points]
    np.testing.assert_allclose(_hypervolume_gain(front, points), expected, atol=1e-12)


def test_linas_leads_in_three_learnable_objectives(tmp_path):
    """Accuracy, latency and size, each additive in the choices: the expected improvement in
    three objectives beats random search and NSGA-II (ranking by predicted front and
    crowding, what LINAS did before, does not)."""
    bench = additive_bench()
    rng = np.random.default_rng(5)
    size = np.sort(rng.uniform(0, 1, (5, 5)), axis=1)
    keys, _ = bench.entries()
    rows = [{**a.to_dict(), **bench.evaluate(a)} for a in bench.space.enumerate()]
    for row in rows:
        row["size"] = sum(size[c, int(row[f"c{c}"][2:])] for c in range(5))
    three = TableBenchmark([{k: str(v) for k, v in r.items()} for r in rows],
                           [f"c{c}" for c in range(5)],
                           {"acc": "acc", "lat": "lat", "size": "size"})  # fmt: skip
    objectives = [*OBJECTIVES, Objective("size", "min")]
    scorer = Scorer(three, objectives)

    def final_ratio(name: str, seed: int) -> float:
        with Store(tmp_path / f"{name}{seed}.sqlite") as store:
            done = Study(space=three.space, evaluator=three, objectives=objectives,
                         searcher=make_searcher(name, three.space, objectives, seed=seed),
                         store=store, run_id="r", budget=60).optimize()  # fmt: skip
        return scorer.curve([e.metrics for e in done])[-1]

    linas = final_ratio("linas", 0)
    assert linas > final_ratio("random", 0) and linas > final_ratio("nsga2", 0)


def test_linas_climbs_its_predictors_in_a_space_too_large_to_list():
    """From a pool of random archs the climb reaches candidates the predictors rate far
    better than any in the pool, one choice at a time, none of them evaluated already."""
    from hwnas.benchmarks.chain import ChainBenchmark
    from hwnas.search.linas import _hypervolume_gain

    bench = ChainBenchmark(12, 4, 0)
    objectives = [Objective("accuracy", "max"), Objective("latency", "min")]
    searcher = make_searcher("linas", bench.space, objectives, seed=0)
    assert searcher._all is None  # 4^12 archs: never listed
    rng = np.random.default_rng(0)
    pool = [bench.space.sample(rng) for _ in range(50)]
    features = bench.space.features(pool)
    weights = rng.normal(0, 1, (features.shape[1], 2))
    lowest = (features @ weights).min(axis=0)

    def predicted(rows):  # a linear model: what the climb follows, without noise
        mean = (rows @ weights - lowest) / 10
        return mean, np.zeros_like(mean)

    front = predicted(features)[0][:5]
    grown, grown_features, mean, _ = searcher._climb(list(pool), features, front, predicted)
    np.testing.assert_allclose(mean, predicted(grown_features)[0])
    assert grown[:50] == pool and len(grown) > 50
    assert len({a.key for a in grown}) == len(grown)
    gain = _hypervolume_gain(front, predicted(grown_features)[0])
    assert gain[50:].max() > 1.5 * gain[:50].max()


# -- constraints on metrics that are not objectives ------------------------------------------


def toy_size(row: dict[str, str]) -> float:
    """The toy table's hidden size (see ``helpers.toy_rows``): a known function of the arch."""
    factor = 1.5 if row["op"] == "conv" else 1.0
    return np.log2(int(row["width"])) * int(row["depth"]) * factor * int(row["kernel"]) / 3


def sized_bench() -> TableBenchmark:
    """The toy problem with a third metric, ``size``, that is not an objective."""
    rows = [{**row, "size": str(toy_size(row))} for row in toy_rows()]
    metrics = {"acc": "acc", "lat": "lat", "size": "size"}
    return TableBenchmark(rows, ["width", "depth", "op", "kernel"], metrics)


SIZE_LIMIT = 8.0  # about a fifth of the toy archs are this small
SIZE = Objective("size", "min", SIZE_LIMIT)


def constrained(name, seed, path, bench, budget, constraints, options=None):
    """Run ``name`` under ``constraints``; returns the searcher and the stored evaluations."""
    searcher = make_searcher(
        name, bench.space, OBJECTIVES, seed=seed, options=options, constraints=constraints
    )
    with Store(path) as store:
        done = Study(
            space=bench.space,
            evaluator=bench,
            objectives=OBJECTIVES,
            searcher=searcher,
            store=store,
            run_id="r",
            budget=budget,
        ).optimize()
    return searcher, done


@pytest.mark.parametrize("name", NAMES)
def test_searchers_prefer_archs_that_satisfy_a_constraint_on_another_metric(name, tmp_path):
    bench = sized_bench()
    options = {"population_size": 20, "sample_size": 10} if name == "evolution" else None
    winners = []
    if name == "evolution":  # record tournament winners: the archs it mutates
        mutate = bench.space.mutate
        bench.space.mutate = lambda arch, rng, **kw: winners.append(arch) or mutate(arch, rng, **kw)
    budget = budget_for(name, 60)
    searcher, done = constrained(name, 0, tmp_path / "s.sqlite", bench, budget, [SIZE], options)
    by_key = {e.arch_key: e.metrics for e in done}
    size = np.array([by_key[a.key]["size"] for a in searcher.archs])
    # the violation counts the constraint, a metric the searcher does not optimise
    np.testing.assert_allclose(searcher.violation, np.maximum(size - SIZE_LIMIT, 0.0))
    np.testing.assert_allclose(searcher.C[:, 0], size)
    feasible = set(np.nonzero(size <= SIZE_LIMIT)[0])
    assert 0 < len(feasible) < len(size)
    order = searcher.best_first(np.arange(len(size)))
    assert set(order[: len(feasible)]) == feasible  # every feasible arch ahead of any other
    if name == "nsga2":  # survival keeps every feasible arch before any violating one
        population = set(searcher.population)
        assert feasible <= population or all(size[i] <= SIZE_LIMIT for i in population)
    if name == "evolution":  # tournaments are won by feasible archs (when one takes part)
        won = [bench.evaluate(a)["size"] <= SIZE_LIMIT for a in winners]
        assert len(won) > 10 and np.mean(won) > 0.8
    if name.startswith("optuna"):  # optuna's sampler sees the constraint too, resumed or not
        resumed = make_searcher(name, bench.space, OBJECTIVES, seed=1, constraints=[SIZE])
        resumed.tell(searcher.archs, [by_key[a.key] for a in searcher.archs])
        assert len(resumed.ask(5)) == 5
        for study in (searcher.study, resumed.study):
            trials = [t for t in study.trials if t.state.name == "COMPLETE"]
            assert len(trials) >= len(searcher.archs)
            for t in trials:
                excess = t.user_attrs["constraints"]
                assert excess == [pytest.approx(toy_size(t.params) - SIZE_LIMIT)]
                if hasattr(t, "constraints"):  # optuna >= 5 reads them from here
                    assert list(t.constraints.values()) == excess
            assert study.best_trials
            assert all(t.user_attrs["constraints"][0] <= 0 for t in study.best_trials)


def test_a_constraint_without_a_limit_is_refused():
    space = toy_bench().space
    for name, factory in SEARCHERS.items():
        with pytest.raises(ValueError, match="size"):
            factory(space, OBJECTIVES, seed=0, constraints=[Objective("size")])
        with pytest.raises(HwnasError, match="no limit"):
            make_searcher(name, space, OBJECTIVES, constraints=[Objective("size", "max")])


def test_a_missing_or_nan_constraint_metric_violates_but_the_arch_stays_valid():
    space = toy_bench().space
    archs = space.enumerate()[:6]
    small = Objective("size", "min", 8.0)
    large = Objective("score", "max", 5.0)
    searcher = make_searcher("random", space, OBJECTIVES, constraints=[small, large])
    base = {"acc": 90.0, "lat": 3.0}
    searcher.tell(
        archs,
        [
            {**base, "size": 7.0, "score": 6.0},  # feasible
            {**base, "size": 9.5, "score": 4.0},  # over by 1.5 and under by 1
            {**base, "score": 6.0},  # no size
            {**base, "size": float("nan"), "score": 6.0},
            {**base, "size": 7.0, "score": float("inf")},
            None,  # invalid
        ],
    )
    viol = searcher.violation
    assert viol[0] == 0.0 and viol[1] == pytest.approx(2.5)
    assert viol[2] == viol[3] == viol[4] == MISSING_CONSTRAINT_VIOLATION
    assert np.isinf(viol[5]) and np.all(np.isfinite(viol[:5]))
    assert np.all(np.isfinite(searcher.F[:5]))  # the objectives still count
    C = searcher.C
    np.testing.assert_array_equal(C[:2], [[7.0, -6.0], [9.5, -4.0]])
    assert np.isnan(C[2, 0]) and np.isnan(C[3, 0]) and np.isnan(C[4, 1]) and np.isnan(C[5]).all()
    assert list(searcher.best_first(range(6))) == [0, 1, 2, 3, 4, 5]


def memory_bench(quantile: float, seed: int = 0) -> tuple[TableBenchmark, float]:
    """5^5 archs with accuracy and latency as in ``additive_bench`` and a memory metric that
    grows with the ops (multiplicatively, with an interaction); the limit keeps ``quantile``
    of the space, the small archs, so most of the good ones are out of bounds."""
    rng = np.random.default_rng(seed)
    gain, cost, mem = (np.sort(rng.uniform(0, 1, (5, 5)), axis=1) for _ in range(3))
    rows = []
    for combo in itertools.product(range(5), repeat=5):
        acc = sum(gain[c, o] for c, o in enumerate(combo)) + rng.normal(0, 0.05)
        lat = sum(cost[c, o] for c, o in enumerate(combo)) + rng.normal(0, 0.05)
        memory = np.exp(sum(mem[c, o] for c, o in enumerate(combo)))
        memory *= 1 + 3 * mem[0, combo[0]] * mem[1, combo[1]]
        row = {f"c{c}": f"op{o}" for c, o in enumerate(combo)}
        rows.append({**row, "acc": str(acc), "lat": str(lat), "mem": str(memory)})
    metrics = {"acc": "acc", "lat": "lat", "mem": "mem"}
    bench = TableBenchmark(rows, [f"c{c}" for c in range(5)], metrics)
    return bench, float(np.quantile([float(r["mem"]) for r in rows], quantile))


def test_linas_learns_a_constraint_and_proposes_mostly_feasible_archs(tmp_path):
    """A tenth of the space fits in memory; after its initial archs LINAS must mostly propose
    archs that fit, far more often than random sampling does."""
    bench, limit = memory_bench(0.1)
    memory = [Objective("mem", "min", limit)]

    def fits_after_initial(name: str, seed: int) -> np.ndarray:
        path = tmp_path / f"{name}{seed}.sqlite"
        _, done = constrained(name, seed, path, bench, 80, memory)
        return np.array([e.metrics["mem"] <= limit for e in done])[10:]

    shares, later = [], []
    for seed in range(2):
        linas, random = fits_after_initial("linas", seed), fits_after_initial("random", seed)
        assert linas.mean() > 4 * random.mean()
        shares.append(linas.mean())
        later.append(linas[30:].mean())
    # over the seeds, not each: one seed's path may be unlucky, and the float rounding of
    # another CPU changes the path (seed 1 gave 0.50 and 0.70 on one machine, more on CI's)
    assert np.mean(shares) > 0.5
    assert np.mean(later) > 0.75  # and more so as the predictor learns


def test_linas_heads_for_a_tiny_feasible_region_when_it_has_found_none(tmp_path):
    """2% of the space fits: its initial random archs find none; then it must not keep
    sampling at random (about 50 more archs per hit) but go where the predictors say."""
    bench, limit = memory_bench(0.02, seed=1)
    memory = [Objective("mem", "min", limit)]
    for seed in range(2):
        searcher, done = constrained("linas", seed, tmp_path / f"{seed}.sqlite", bench, 40, memory)
        fits = np.array([e.metrics["mem"] <= limit for e in done])
        assert not fits[:10].any()  # the initial phase found nothing: the case under test
        assert np.argmax(fits) < 14  # found within two rounds of looking
        assert fits[10:].mean() > 0.2  # ten times the region's share
        assert set(searcher.best_first(range(40))[: fits.sum()]) == set(np.nonzero(fits)[0])


def test_linas_heads_for_a_tiny_region_under_an_objective_limit(tmp_path):
    """The same rescue when the limit sits on an objective (no separate constraint): with
    nothing feasible after the initial archs, LINAS must model its way there, not sample."""
    bench, _ = memory_bench(0.02, seed=1)
    lat = [e["lat"] for e in map(bench.evaluate, bench.space.enumerate())]
    objectives = [Objective("acc", "max"), Objective("lat", "min", float(np.quantile(lat, 0.02)))]
    for seed in range(2):
        searcher = make_searcher("linas", bench.space, objectives, seed=seed)
        with Store(tmp_path / f"{seed}.sqlite") as store:
            study = Study(space=bench.space, evaluator=bench, objectives=objectives,
                          searcher=searcher, store=store, run_id="r", budget=40)  # fmt: skip
            done = study.optimize()
        fits = np.array([e.metrics["lat"] <= objectives[1].limit for e in done])
        assert not fits[:10].any()  # the initial phase found nothing: the case under test
        assert fits[10:].mean() > 0.15  # seven times the region's share (sampling: ~0.02)
