"""Run a slow study that logs every evaluation it starts; used by the kill-and-resume test.

Usage: python resume_job.py STORE LOG BUDGET
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


def main(store_path: str, log_path: str, budget: int) -> None:
    bench = toy_bench()
    with Store(store_path) as store:
        Study(
            space=bench.space,
            evaluator=LoggingEvaluator(bench, Path(log_path)),
            objectives=OBJECTIVES,
            searcher=make_searcher("nsga2", bench.space, OBJECTIVES, seed=0),
            store=store,
            run_id="killed",
            budget=budget,
        ).optimize()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
