"""Executors and the study's parallel loop: results out of order, N in flight, lost workers,
device-tagged Dask workers. Loopback only; every cluster is local and bounded in time."""

import collections
import concurrent.futures
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from helpers import OBJECTIVES, budget_for, kill_when_stored, toy_bench
from hwnas.execute import Part, Workload, built, make_executor, perform
from hwnas.search import SEARCHERS, make_searcher
from hwnas.store import Store
from hwnas.study import Study

TESTS = Path(__file__).parent


class Shuffled:
    """The executor contract in this process, with ``slots`` jobs in flight finishing in a
    random order: what a pool of workers of uneven speed does to a study, reproducibly.
    ``dies_after`` completed jobs, it raises ``Killed`` (the driver dies; the jobs in flight
    are lost)."""

    def __init__(self, slots: int, seed: int, dies_after: int | None = None) -> None:
        bench = toy_bench()
        self.slots, self.rng, self.dies_after = slots, np.random.default_rng(seed), dies_after
        self.here = built(Workload("helpers:toy_workload"))
        assert self.here.space.describe() == bench.space.describe()
        self.running, self.evaluated = [], 0

    def submit(self, job):
        assert len(self.running) < self.slots, "the study overfilled the executor"
        self.running.append(job)

    def completed(self, on_start=None):
        if self.dies_after is not None and self.evaluated >= self.dies_after:
            raise Killed
        job = self.running.pop(int(self.rng.integers(len(self.running))))
        self.evaluated += 1
        return [perform(job, self.here, remote=False)]

    def close(self):
        self.running.clear()


class Killed(BaseException):
    pass


# Searchers by name, and two that ask for one arch at a time: fewer than are in flight.
VARIANTS = {"evolution-1": ("evolution", {"population_size": 6, "sample_size": 2}),
            "tpe": ("optuna-tpe", {})}  # fmt: skip


def _study(store, searcher, executor, budget=40, tell_order="asked", run_id="r"):
    bench = toy_bench()
    name, options = VARIANTS.get(searcher, (searcher, {}))
    return Study(space=bench.space, executor=executor, tell_order=tell_order,
                 objectives=OBJECTIVES, store=store, run_id=run_id, budget=budget,
                 searcher=make_searcher(name, bench.space, OBJECTIVES, 3, options))  # fmt: skip


def _told(study):
    """What the searcher learnt, in the order it learnt it."""
    return [a.key for a in study.searcher.archs]


@pytest.mark.parametrize("searcher", list(SEARCHERS))
def test_every_searcher_takes_results_as_they_arrive(tmp_path, searcher):
    """Four in flight, told the moment each finishes, in a random order: the budget is
    spent on distinct archs and every result reaches the searcher."""
    with Store(tmp_path / "run.sqlite") as store:
        budget = budget_for(searcher, 30)
        study = _study(store, searcher, Shuffled(4, seed=1), budget=budget, tell_order="arrival")
        done = study.optimize()
    keys = [e.arch_key for e in done]
    assert len(keys) == len(set(keys)) == budget
    assert sorted(_told(study)) == sorted(keys)


@pytest.mark.parametrize("searcher", ["random", "evolution", "nsga2", "linas", *VARIANTS])
def test_told_in_asked_order_a_parallel_run_does_not_depend_on_timing(tmp_path, searcher):
    """Four in flight finishing in three different random orders: the searcher is told the
    same results in the same order, so the runs evaluate the same archs (also for
    searchers asking for fewer archs at a time than are in flight)."""
    runs = []
    for seed in (1, 2, 3):
        with Store(tmp_path / f"{seed}.sqlite") as store:
            study = _study(store, searcher, Shuffled(4, seed=seed), budget=30)
            done = study.optimize()
        runs.append((_told(study), {e.arch_key for e in done}))
    assert runs[0] == runs[1] == runs[2]
    assert len(runs[0][1]) == 30


@pytest.mark.parametrize("searcher", ["random", "evolution", "nsga2", "linas", *VARIANTS])
def test_a_parallel_study_killed_20_times_ends_as_the_uninterrupted_one(tmp_path, searcher):
    """Three jobs in flight, the driver killed at 20 random moments (6 for LINAS, whose
    resumes replay predictor fits): each resume completes what the kill left, and the
    final run holds the uninterrupted run's evaluations with the same metrics."""
    with Store(tmp_path / "whole.sqlite") as store:
        whole = _study(store, searcher, Shuffled(3, seed=0)).optimize()
    rng = np.random.default_rng(11)
    kills = 6 if searcher == "linas" else 20
    evaluated = 0
    for life in range(kills + 1):
        dies = None if life == kills else int(rng.integers(0, 5))
        executor = Shuffled(3, seed=100 + life, dies_after=dies)
        with Store(tmp_path / "killed.sqlite") as store:
            try:
                result = _study(store, searcher, executor).optimize()
            except Killed:
                result = None
        evaluated += executor.evaluated
    assert result is not None
    assert {(e.arch_key, str(e.metrics)) for e in result} == {
        (e.arch_key, str(e.metrics)) for e in whole
    }
    lost = evaluated - len(result)  # evaluated but in flight at a kill, so never stored
    assert 0 <= lost <= 2 * kills


@pytest.mark.parametrize("kind", ["process", "dask"])
def test_a_pool_of_workers_gives_the_in_process_result(tmp_path, kind):
    """Two worker processes, each rebuilding the workload from its name: the same archs
    as the in-process run with two in flight, each evaluated once, by both workers."""
    with Store(tmp_path / "reference.sqlite") as store:
        reference = _study(store, "nsga2", Shuffled(2, seed=5), budget=24)
        reference.optimize()
    executor = make_executor(Workload("helpers:toy_workload", {"delay_s": 0.02}), 2, kind=kind)
    try:
        with Store(tmp_path / "run.sqlite") as store:
            study = _study(store, "nsga2", executor, budget=24)
            done = study.optimize()
            jobs = store.jobs("r")
    finally:
        executor.close()
    assert _told(study) == _told(reference)
    assert len({e.arch_key for e in done}) == len(done) == 24
    assert all(j["state"] == "done" for j in jobs) and len(jobs) == 24
    assert len({j["worker"] for j in jobs}) == 2


@pytest.mark.parametrize("kind", ["process", "dask"])
def test_a_worker_killed_mid_task_never_ends_the_run(tmp_path, kind):
    """A worker process dies in the middle of an evaluation: the job is tried again, the run
    reaches its budget and every arch is stored once, scored."""
    marker = tmp_path / "died"
    workload = Workload("helpers:toy_workload", {"die_once": str(marker), "delay_s": 0.02})
    executor = make_executor(workload, 2, kind=kind)
    try:
        with Store(tmp_path / "run.sqlite") as store:
            done = _study(store, "random", executor, budget=12).optimize()
    finally:
        executor.close()
    assert marker.exists(), "no worker was killed"
    assert len({e.arch_key for e in done}) == len(done) == 12
    assert all(e.metrics is not None for e in done)


def test_latency_jobs_go_only_to_their_device_workers(tmp_path):
    """A scheduler with one general worker, and one started as ``hwnas worker --device
    board``: every latency job is measured on the board's worker and nothing else is; the
    store says who measured what."""
    distributed = pytest.importorskip("distributed")
    from hwnas.execute.dask import ANY_WORKER, DaskExecutor

    cluster = distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, resources={ANY_WORKER: 1}, dashboard_address=None
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), *sys.path])}
    board = subprocess.Popen(
        [sys.executable, "-m", "hwnas.cli", "worker", "--scheduler", cluster.scheduler_address,
         "--device", "board", "--name", "the-board"], env=env,
    )  # fmt: skip
    executor = None
    try:
        deadline = time.time() + 60
        with distributed.Client(cluster.scheduler_address) as client:
            while len(client.nthreads()) < 2:
                assert time.time() < deadline and board.poll() is None, "no device worker"
                time.sleep(0.2)
        workload = Workload("helpers:toy_workload", {"split": True})
        executor = DaskExecutor(workload, cluster.scheduler_address, in_flight=2)
        bench = toy_bench()
        with Store(tmp_path / "run.sqlite") as store:
            study = Study(space=bench.space, executor=executor, objectives=OBJECTIVES,
                          parts=(Part(("quality",)), Part(("latency",), "board")),
                          searcher=make_searcher("random", bench.space, OBJECTIVES, seed=0),
                          store=store, run_id="r", budget=10)  # fmt: skip
            done = study.optimize()
            measured = store.measured_by("r")
    finally:
        if executor is not None:
            executor.close()
        board.terminate()
        board.wait(30)
        cluster.close()
    assert len(done) == 10 and all(set(e.metrics) == {"acc", "lat"} for e in done)
    assert {m["latency"] for m in measured.values()} == {"the-board"}
    assert "the-board" not in {m["quality"] for m in measured.values()}


def test_a_study_takes_an_evaluator_or_an_executor(tmp_path):
    bench = toy_bench()
    searcher = make_searcher("random", bench.space, OBJECTIVES)
    with Store(tmp_path / "run.sqlite") as store:
        for given in ({}, {"evaluator": bench, "executor": Shuffled(2, seed=0)}):
            with pytest.raises(ValueError, match="an evaluator or an executor, not both"):
                Study(space=bench.space, objectives=OBJECTIVES, store=store, run_id="r",
                      budget=3, searcher=searcher, **given)  # fmt: skip


def test_a_driver_killed_with_its_workers_resumes_without_repeating_or_losing(tmp_path):
    """The driver of a two-worker pool killed with SIGKILL mid-run (its workers orphaned,
    and gone within seconds): the restart completes what was left, evaluating again only
    what was in flight at the kill, and the run ends with the archs and metrics of an
    uninterrupted run with two in flight."""
    bench = toy_bench()
    with Store(tmp_path / "whole.sqlite") as store:
        Study(space=bench.space, executor=Shuffled(2, seed=0), objectives=OBJECTIVES,
              searcher=make_searcher("nsga2", bench.space, OBJECTIVES, seed=0),
              store=store, run_id="killed", budget=40).optimize()  # fmt: skip
        expected = {e.arch_key: e.metrics for e in store.evaluations("killed")}
    path, log = tmp_path / "killed.sqlite", tmp_path / "started.log"
    job = [sys.executable, str(TESTS / "resume_job.py"), str(path), str(log), "40", "2"]
    kill_when_stored(subprocess.Popen(job), path, "killed", 15)
    with Store(path) as store:
        before = {e.arch_key for e in store.evaluations("killed")}
    assert 15 <= len(before) < 40, "the driver must be killed part-way"
    subprocess.run(job, check=True)
    with Store(path) as store:
        got = {e.arch_key: e.metrics for e in store.evaluations("killed")}
        jobs = store.jobs("killed")
    assert got == expected
    assert sum(j["state"] == "done" for j in jobs) == 40  # each arch's job done once
    started = collections.Counter(log.read_text().split())
    repeated = {k for k, n in started.items() if n > 1}
    assert len(repeated) <= 2 and not repeated & before  # only what was in flight


class _FakePool:
    """A process pool in this process: a job on a killer arch breaks the pool, failing every
    job it holds, as a worker's death does."""

    def __init__(self, here, killers, pools):
        self.here, self.killers, self.futures = here, killers, []
        pools.append(self)

    def submit(self, function, workload, job):
        future = concurrent.futures.Future()
        self.futures.append((future, job))
        return future

    def resolve(self):
        from concurrent.futures.process import BrokenProcessPool

        broken = any(job.arch_key in self.killers for _, job in self.futures)
        for future, job in self.futures:
            if not future.done():
                if broken:
                    future.set_exception(BrokenProcessPool("a worker died"))
                else:
                    future.set_result(perform(job, self.here, remote=True))

    def shutdown(self, wait=True, cancel_futures=False):
        pass


def test_a_worker_death_is_charged_only_to_the_job_that_caused_it(tmp_path, monkeypatch):
    """An arch whose evaluation always kills its worker breaks the pool with three others
    in flight: the others are run again alone and scored on their first attempt; the killer,
    alone, fails each attempt and is stored unscored, and the run goes on."""
    from hwnas.execute import pool as pool_module
    from hwnas.execute.pool import ProcessExecutor

    here, bench = built(Workload("helpers:toy_workload")), toy_bench()
    killer = bench.space.make({"width": 8, "depth": 1, "op": "conv", "kernel": 3})
    pools = []

    def pool_now(self):
        if self._pool is None:
            self._pool = _FakePool(here, {killer.key}, pools)
        return self._pool

    def wait(futures, return_when):
        pools[-1].resolve()
        return {f for f in futures if f.done()}, set()

    monkeypatch.setattr(ProcessExecutor, "_pool_now", pool_now)
    monkeypatch.setattr(pool_module, "wait", wait)

    class KillerFirst:
        """Random search whose first batch holds the killer among three others."""

        batch_size = 4

        def __init__(self):
            self.inner = make_searcher("random", bench.space, OBJECTIVES, seed=0)
            self.first = True

        def ask(self, n):
            if not self.first:
                return self.inner.ask(n)
            self.first = False
            return [killer, *[a for a in self.inner.ask(n) if a.key != killer.key][: n - 1]]

        def tell(self, archs, metrics):
            self.inner.tell(archs, metrics)

    executor = ProcessExecutor(Workload("unused"), workers=4)
    with Store(tmp_path / "run.sqlite") as store:
        study = Study(space=bench.space, executor=executor, objectives=OBJECTIVES,
                      searcher=KillerFirst(), store=store, run_id="r", budget=12)  # fmt: skip
        done = study.optimize()
        jobs = store.jobs("r")
    assert len(done) == 12
    by_key = {e.arch_key: e for e in done}
    assert by_key[killer.key].metrics is None and "worker lost" in by_key[killer.key].error
    assert all(e.metrics is not None for k, e in by_key.items() if k != killer.key)
    others = [j for j in jobs if j["arch_key"] != killer.key]
    assert all(j["attempt"] == 1 and j["state"] == "done" for j in others)
    assert [j["state"] for j in jobs if j["arch_key"] == killer.key] == ["failed"] * 3
