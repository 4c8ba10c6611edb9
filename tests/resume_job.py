"""Run a slow study that logs every evaluation it starts; used by the kill-and-resume test.

Usage: python resume_job.py STORE LOG BUDGET [WORKERS]

With WORKERS, the toy table is evaluated by that many worker processes (nothing logged).
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from helpers import OBJECTIVES, toy_bench  # noqa: E402
from hwnas.search import make_searcher  # noqa: E402
from hwnas.store import Store  # noqa: E402
from hwnas.study import Study  # noqa: E402


class LoggingEvaluator:
    """Appends each arch key to LOG before evaluating it, slowly."""

    def __init__(self, bench, log: Path) -> None:
        self.bench, self.log, self.metrics = bench, log, bench.metrics

    def evaluate(self, arch):
        with self.log.open("a") as handle:
            handle.write(arch.key + "\n")
        time.sleep(0.02)
        return self.bench.evaluate(arch)


def main(store_path: str, log_path: str, budget: int, workers: int | None) -> None:
    from hwnas.execute import Workload, make_executor

    bench = toy_bench()
    evaluation = {"evaluator": LoggingEvaluator(bench, Path(log_path))}
    if workers:
        workload = Workload("helpers:toy_workload", {"delay_s": 0.05})
        evaluation = {"executor": make_executor(workload, workers)}
    with Store(store_path) as store:
        Study(
            space=bench.space,
            objectives=OBJECTIVES,
            searcher=make_searcher("nsga2", bench.space, OBJECTIVES, seed=0),
            store=store,
            run_id="killed",
            budget=budget,
            **evaluation,
        ).optimize()
    if workers:
        evaluation["executor"].close()


if __name__ == "__main__":
    workers = int(sys.argv[4]) if len(sys.argv) > 4 else None
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), workers)
