import collections
import subprocess
import sys
from pathlib import Path

from helpers import kill_when_stored
from hwnas.store import Store

JOB = Path(__file__).parent / "resume_job.py"


def test_killed_run_resumes_without_repeating_or_losing_evaluations(tmp_path):
    store_path, log = tmp_path / "run.sqlite", tmp_path / "evaluated.log"
    budget = 60
    job = subprocess.Popen([sys.executable, str(JOB), str(store_path), str(log), str(budget)])
    kill_when_stored(job, store_path, "killed", 15)
    with Store(store_path) as store:
        before = {e.arch_key for e in store.evaluations("killed")}
    assert 15 <= len(before) < budget, "the job must be killed part-way"

    subprocess.run([sys.executable, str(JOB), str(store_path), str(log), str(budget)], check=True)

    with Store(store_path) as store:
        after = [e.arch_key for e in store.evaluations("killed")]
    assert len(after) == len(set(after)) == budget
    assert before <= set(after)
    started = collections.Counter(log.read_text().split())
    repeated = {k for k, n in started.items() if n > 1}
    # Only the evaluation in flight at the kill (never stored) may have been started twice.
    assert len(repeated) <= 1 and not repeated & before
