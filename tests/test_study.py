import numpy as np
import pytest

from helpers import COSTLY_SEARCHERS, budget_for
from hwnas.execute import worker_name
from hwnas.search import SEARCHERS
from hwnas.store import Store


class Killed(BaseException):
    """A death mid-evaluation: nothing of the evaluation in flight reaches the store."""


class DiesAfter:
    """The benchmark's metrics, until ``limit`` evaluations have succeeded in this life."""

    def __init__(self, bench, limit: int | None) -> None:
        self.bench, self.limit, self.metrics, self.succeeded = bench, limit, bench.metrics, 0

    def evaluate(self, arch):
        if self.limit is not None and self.succeeded >= self.limit:
            raise Killed
        self.succeeded += 1
        return self.bench.evaluate(arch)


def _life(store_path, searcher: str, budget: int, limit: int | None):
    """One process's life: a searcher made afresh with the seed, the store as left."""
    from helpers import OBJECTIVES, toy_bench
    from hwnas.search import make_searcher
    from hwnas.study import Study

    bench = toy_bench()
    evaluator = DiesAfter(bench, limit)
    with Store(store_path) as store:
        study = Study(space=bench.space, evaluator=evaluator, objectives=OBJECTIVES,
                      searcher=make_searcher(searcher, bench.space, OBJECTIVES, seed=3),
                      store=store, run_id="r", budget=budget)  # fmt: skip
        try:
            done = study.optimize()
        except Killed:
            return None, evaluator.succeeded
    return [(e.arch_key, e.metrics) for e in done], evaluator.succeeded


@pytest.mark.parametrize("searcher", list(SEARCHERS))
def test_a_study_killed_at_random_moments_ends_as_the_uninterrupted_one(tmp_path, searcher):
    """Killed 20 times at random points (mid-batch included) and resumed each time, every
    searcher ends with exactly the uninterrupted run's evaluations, in the same order, and
    no arch is evaluated twice. LINAS and the Gaussian process are killed 4 times: each
    resume replays their model fits, seconds each (bench/resume_exact.py kills LINAS 10
    times on NAS-Bench-201)."""
    budget = budget_for(searcher, 40)
    expected, _ = _life(tmp_path / "whole.sqlite", searcher, budget, None)
    rng = np.random.default_rng(7)
    kills = 4 if searcher == "linas" or searcher in COSTLY_SEARCHERS else 20
    limits = [int(n) for n in rng.integers(0, 8 if searcher == "linas" else 4, size=kills)]
    evaluated, result = 0, None
    for limit in [*limits, None]:
        result, succeeded = _life(tmp_path / "killed.sqlite", searcher, budget, limit)
        evaluated += succeeded
        if result is not None:
            break
    assert result == expected
    assert evaluated == budget  # each arch evaluated once, across all lives


class Flaky:
    """The benchmark's metrics, but ``fail(arch, attempt)`` says when an attempt raises."""

    def __init__(self, bench, fail) -> None:
        self.bench, self.fail, self.metrics, self.calls = bench, fail, bench.metrics, {}

    def evaluate(self, arch):
        self.calls[arch.key] = self.calls.get(arch.key, 0) + 1
        if self.fail(arch, self.calls[arch.key]):
            raise RuntimeError(f"device lost during {arch.key[:8]}")
        return self.bench.evaluate(arch)


def _flaky_study(store, fail, budget=12, retries=2):
    from helpers import OBJECTIVES, toy_bench
    from hwnas.search import make_searcher
    from hwnas.study import Study

    bench = toy_bench()
    evaluator = Flaky(bench, fail)
    study = Study(space=bench.space, evaluator=evaluator, objectives=OBJECTIVES,
                  searcher=make_searcher("random", bench.space, OBJECTIVES, seed=0),
                  store=store, run_id="r", budget=budget, retries=retries)  # fmt: skip
    return study, evaluator


def test_a_failed_evaluation_is_retried_recorded_and_never_ends_the_run(tmp_path):
    """Every second arch fails its first attempt and one arch fails every attempt: the run
    still reaches its budget, the flaky ones scored on their second attempt, the hopeless
    one stored unscored with its error, every attempt a job in the store."""
    hopeless = []

    def fail(arch, attempt):
        if not hopeless:
            hopeless.append(arch.key)
        return arch.key == hopeless[0] or (hash(arch.key) % 2 == 0 and attempt == 1)

    with Store(tmp_path / "run.sqlite") as store:
        study, evaluator = _flaky_study(store, fail)
        done = study.optimize()
        jobs = store.jobs("r")
    assert len(done) == 12 and len({e.arch_key for e in done}) == 12
    lost = next(e for e in done if e.arch_key == hopeless[0])
    assert lost.metrics is None and lost.error.startswith("failed 3 time(s), last: RuntimeError")
    assert evaluator.calls[hopeless[0]] == 3
    assert all(e.metrics is not None for e in done if e.arch_key != hopeless[0])
    for e in done:
        mine = [j for j in jobs if j["arch_key"] == e.arch_key]
        attempts = evaluator.calls[e.arch_key]
        assert sorted(j["attempt"] for j in mine) == list(range(1, attempts + 1))
        assert all(j["worker"] == worker_name() and j["state"] in ("done", "failed")
                   for j in mine)  # fmt: skip
        assert [j["state"] for j in mine if j["attempt"] == attempts] == (
            ["failed"] if e.arch_key == hopeless[0] else ["done"]
        )


def test_an_evaluator_that_always_fails_ends_the_run_in_one_line(tmp_path):
    from hwnas.errors import HwnasError
    from hwnas.study import FAILING_IN_A_ROW

    with Store(tmp_path / "run.sqlite") as store:
        study, evaluator = _flaky_study(store, lambda arch, attempt: True, retries=1)
        with pytest.raises(HwnasError, match="failed every attempt.*RuntimeError: device lost"):
            study.optimize()
        stored = store.evaluations("r")
    assert len(stored) == FAILING_IN_A_ROW and all(e.metrics is None for e in stored)
    assert all(evaluator.calls[e.arch_key] == 2 for e in stored)  # retries=1: two attempts


def test_an_attempt_cut_short_by_a_kill_is_counted_on_resume(tmp_path):
    """The arch in flight at a kill shows as a running attempt; the resume's attempt at it
    is the next one."""
    path = tmp_path / "killed.sqlite"
    _life(path, "random", 6, 2)
    with Store(path) as store:
        running = [j for j in store.jobs("r") if j["state"] == "running"]
    assert len(running) == 1 and running[0]["attempt"] == 1
    _life(path, "random", 6, None)
    with Store(path) as store:
        again = [j for j in store.jobs("r") if j["arch_key"] == running[0]["arch_key"]]
    assert [(j["attempt"], j["state"]) for j in again] == [(1, "running"), (2, "done")]


class _KilledWhileRecording(Store):
    """A store whose process dies after ``records`` evaluations, while the next one's
    job state is written but before its evaluation is."""

    def __init__(self, path, records: int) -> None:
        super().__init__(path)
        self.records = records

    def record(self, *args, **kwargs):
        if self.records == 0:
            raise Killed
        self.records -= 1
        return super().record(*args, **kwargs)


def test_a_kill_between_a_job_and_its_record_leaves_the_job_undone(tmp_path):
    """A job's last state and its arch's result are one commit: a kill in between leaves
    the job running, never done with its result lost (it would be done twice on resume)."""
    from helpers import OBJECTIVES, toy_bench
    from hwnas.search import make_searcher
    from hwnas.study import Study

    bench, path = toy_bench(), tmp_path / "killed.sqlite"
    with _KilledWhileRecording(path, 3) as store, pytest.raises(Killed):
        Study(space=bench.space, evaluator=bench, objectives=OBJECTIVES, store=store,
              searcher=make_searcher("random", bench.space, OBJECTIVES, seed=0),
              run_id="r", budget=6).optimize()  # fmt: skip
    with Store(path) as store:
        stored = {e.arch_key for e in store.evaluations("r")}
        done = {j["arch_key"] for j in store.jobs("r") if j["state"] == "done"}
        states = [j["state"] for j in store.jobs("r")]
    assert len(stored) == 3 and done == stored and states.count("running") == 1
