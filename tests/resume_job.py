"""A study of the toy table on worker processes, used by the kill-and-resume test.

Usage: python resume_job.py STORE LOG BUDGET WORKERS

Each evaluation started, in whichever worker, appends its arch key to LOG.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from helpers import OBJECTIVES, toy_bench  # noqa: E402
from hwnas.execute import Workload, make_executor  # noqa: E402
from hwnas.search import make_searcher  # noqa: E402
from hwnas.store import Store  # noqa: E402
from hwnas.study import Study  # noqa: E402


def main(store_path: str, log_path: str, budget: int, workers: int) -> None:
    bench = toy_bench()
    workload = Workload("helpers:toy_workload", {"delay_s": 0.05, "log": log_path})
    executor = make_executor(workload, workers)
    try:
        with Store(store_path) as store:
            Study(
                space=bench.space,
                executor=executor,
                objectives=OBJECTIVES,
                searcher=make_searcher("nsga2", bench.space, OBJECTIVES, seed=0),
                store=store,
                run_id="killed",
                budget=budget,
            ).optimize()
    finally:
        executor.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
