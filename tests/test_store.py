import math
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from hwnas.errors import HwnasError
from hwnas.store import Evaluation, Store

CONFIG = {"searcher": "nsga2", "seed": 0, "objectives": [{"name": "acc", "direction": "max"}]}


def record(store: Store, run_id: str, key: str, metrics: dict | None, **kwargs) -> Evaluation:
    return store.record(
        run_id,
        key,
        {"depth": len(key), "ops": [key]},
        metrics,
        wall_time_s=0.5,
        started_at=100.0,
        finished_at=100.5,
        **kwargs,
    )


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "runs.sqlite"
    with Store(path) as store:
        store.open_run("a", CONFIG)
        written = [
            record(store, "a", "x", {"acc": 91.5, "lat": 3.25}),
            record(store, "a", "y", None, error="invalid: too deep"),
            record(store, "a", "z", {"acc": math.nan, "lat": math.inf}),
        ]
    with Store(path) as store:
        read = store.evaluations("a")
        assert store.run_ids() == ["a"]
        assert store.run_config("a") == CONFIG
        assert store.run_config("missing") is None
        assert store.count("a") == 3
    assert [e.seq for e in read] == [0, 1, 2]
    assert read[:2] == written[:2]
    assert read[1].metrics is None and read[1].error == "invalid: too deep"
    assert read[0].arch == {"depth": 1, "ops": ["x"]}
    assert math.isnan(read[2].metrics["acc"]) and read[2].metrics["lat"] == math.inf


def test_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    Store(path).close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_runs_are_separate_and_seq_is_per_run(tmp_path: Path) -> None:
    with Store(tmp_path / "runs.sqlite") as store:
        store.open_run("a", CONFIG)
        store.open_run("b", {**CONFIG, "seed": 1})
        record(store, "a", "x", {"acc": 1.0})
        second = record(store, "b", "x", {"acc": 2.0})
        assert second.seq == 0
        assert store.run_ids() == ["a", "b"]
        assert [e.metrics for e in store.evaluations("b")] == [{"acc": 2.0}]


def test_resume_after_close(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    with Store(path) as store:
        store.open_run("a", CONFIG)
        for key in "abc":
            record(store, "a", key, {"acc": 1.0})
    with Store(path) as store:
        store.open_run("a", dict(reversed(CONFIG.items())))  # same config, other key order
        assert [e.arch_key for e in store.evaluations("a")] == list("abc")
        assert record(store, "a", "d", {"acc": 1.0}).seq == 3


CRASHING_WRITER = textwrap.dedent(
    """
    import sys, time
    from hwnas.store import Store

    store = Store(sys.argv[1])
    store.open_run("a", {"seed": 0})
    i = 0
    while True:
        store.record("a", f"k{i}", {"i": i}, {"acc": float(i)},
                     wall_time_s=0.0, started_at=0.0, finished_at=0.0)
        i += 1
        if i >= int(sys.argv[2]):
            time.sleep(0.01)  # keep writing slowly so the kill lands mid-run
    """
)


def test_records_survive_sigkill(tmp_path: Path) -> None:
    path, n = tmp_path / "runs.sqlite", 25
    writer = subprocess.Popen([sys.executable, "-c", CRASHING_WRITER, str(path), str(n)])
    try:
        deadline = time.monotonic() + 60
        while not (path.exists() and _count_or_zero(path) >= n):
            assert writer.poll() is None, "writer died on its own"
            assert time.monotonic() < deadline, "writer too slow"
            time.sleep(0.05)
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    assert writer.returncode == -signal.SIGKILL
    with Store(path) as store:
        store.open_run("a", {"seed": 0})
        done = store.evaluations("a")
        assert len(done) >= n
        assert [e.seq for e in done] == list(range(len(done)))
        assert [e.arch_key for e in done] == [f"k{i}" for i in range(len(done))]
        assert all(e.metrics == {"acc": float(e.seq)} for e in done)
        assert record(store, "a", "after", {"acc": 0.0}).seq == len(done)


def _count_or_zero(path: Path) -> int:
    """The writer may not have created the schema yet."""
    try:
        with Store(path) as store:
            return store.count("a")
    except HwnasError:
        return 0


def test_corrupt_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    path.write_bytes(bytes(range(256)) * 16)
    with pytest.raises(HwnasError, match="not a hwnas run store") as info:
        Store(path)
    assert "\n" not in str(info.value)
    assert path.read_bytes() == bytes(range(256)) * 16


def test_foreign_sqlite_file_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (x)")
    before = path.read_bytes()
    with pytest.raises(HwnasError, match="no hwnas schema"):
        Store(path)
    assert path.read_bytes() == before


def test_other_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    Store(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(HwnasError, match="schema version 99"):
        Store(path)


def test_changed_config_is_refused(tmp_path: Path) -> None:
    with Store(tmp_path / "runs.sqlite") as store:
        store.open_run("a", CONFIG)
        with pytest.raises(HwnasError, match=r"'a'.*different config.*seed") as info:
            store.open_run("a", {**CONFIG, "seed": 1})
        assert "\n" not in str(info.value)
        assert store.run_config("a") == CONFIG


def test_duplicate_arch_is_a_bug(tmp_path: Path) -> None:
    with Store(tmp_path / "runs.sqlite") as store:
        store.open_run("a", CONFIG)
        record(store, "a", "x", {"acc": 1.0})
        with pytest.raises(ValueError, match="'x'"):
            record(store, "a", "x", {"acc": 2.0})
        assert store.count("a") == 1


def test_unopenable_path_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(HwnasError, match="cannot open run store"):
        Store(tmp_path)
