"""SQLite run store: the source of truth for resume.

Each evaluation is committed the moment it completes, so a killed run loses at most the
evaluations still in flight. WAL with ``synchronous=NORMAL`` keeps every commit safe against a
process crash while staying cheap enough to commit once per record.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hwnas.errors import HwnasError

SCHEMA_VERSION = 1
MAX_FIELD_CHARS = 16 * 1024**2
"""Longest JSON text one stored field may hold: a run's config is kilobytes, an arch or its
metrics hundreds of bytes; a longer field is damage, refused before it is read."""

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (run_id TEXT PRIMARY KEY, config TEXT NOT NULL, created_at REAL);
CREATE TABLE IF NOT EXISTS evaluations (
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    arch_key TEXT NOT NULL,
    arch TEXT NOT NULL,
    metrics TEXT,
    error TEXT,
    wall_time_s REAL NOT NULL,
    started_at REAL NOT NULL,
    finished_at REAL NOT NULL,
    PRIMARY KEY (run_id, arch_key)
);
CREATE INDEX IF NOT EXISTS evaluations_by_seq ON evaluations (run_id, seq);
INSERT OR IGNORE INTO meta VALUES ('schema_version', '{SCHEMA_VERSION}');
"""
_JOBS = """
CREATE TABLE IF NOT EXISTS jobs (
    run_id TEXT NOT NULL,
    arch_key TEXT NOT NULL,
    part TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    state TEXT NOT NULL,
    worker TEXT NOT NULL,
    error TEXT,
    updated_at REAL NOT NULL,
    PRIMARY KEY (run_id, arch_key, part, attempt)
);
"""
"""Every attempt at a job (one part of an arch's evaluation: its evaluators, run by one
worker) and where it stands (``JOB_STATES``), committed as it changes: which worker
measured what. Added to a store the first time a job is recorded, so older stores stay
readable."""
JOB_STATES = ("pending", "running", "done", "failed")
_COLUMNS = "run_id, seq, arch_key, arch, metrics, error, wall_time_s, started_at, finished_at"


@dataclass(frozen=True)
class Evaluation:
    """One stored evaluation; ``metrics`` is None when the arch was invalid or failed."""

    run_id: str
    seq: int
    arch_key: str
    arch: dict[str, Any]
    metrics: dict[str, float] | None
    error: str | None
    wall_time_s: float
    started_at: float
    finished_at: float


class Store:
    """Runs and their evaluations in one SQLite file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.is_file() and self.path.stat().st_size == 0:  # SQLite would take it as new
            raise HwnasError(f"{self.path}: an empty file, not a hwnas run store (damaged; "
                             "move it away to start afresh)")  # fmt: skip
        try:
            # Autocommit: every write statement is its own transaction, hence its own commit.
            self._conn = sqlite3.connect(self.path, isolation_level=None)
        except sqlite3.Error as exc:
            raise HwnasError(f"{self.path}: cannot open run store ({exc})") from None
        try:
            self._open()
        except sqlite3.OperationalError as exc:  # locked, unreadable: the file may be fine
            self._conn.close()
            raise HwnasError(f"{self.path}: cannot open run store ({exc})") from None
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise HwnasError(f"{self.path}: not a hwnas run store ({exc})") from None
        except HwnasError:
            self._conn.close()
            raise

    def _open(self) -> None:
        """Check the file is ours before writing anything to it; create the schema if new."""
        tables = {r[0] for r in self._conn.execute("SELECT name FROM sqlite_master")}
        self._jobs_table = "jobs" in tables  # made by the first ``job`` otherwise
        if tables:
            version = None
            if "meta" in tables:
                row = self._conn.execute(
                    "SELECT value FROM meta WHERE key = 'schema_version'"
                ).fetchone()
                version = None if row is None else row[0]
            if version != str(SCHEMA_VERSION):
                found = "no hwnas schema" if version is None else f"schema version {version}"
                raise HwnasError(
                    f"{self.path}: not a hwnas run store ({found}, expected {SCHEMA_VERSION})"
                )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        if not tables:
            # IF NOT EXISTS and OR IGNORE: two processes creating the same store both succeed.
            self._conn.executescript(f"BEGIN; {_SCHEMA} COMMIT;")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Writes made inside are committed together or not at all. The study writes a job's
        last state and its arch's evaluation in one, so a kill between the two cannot leave
        a job marked done whose result is lost, to be done again on resume."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def open_run(self, run_id: str, config: Mapping[str, Any]) -> None:
        """Create the run, or accept it unchanged; a changed config refuses the resume."""
        text = json.dumps(config, sort_keys=True)
        stored = self._stored_config(run_id)
        if stored is None:
            self._conn.execute("INSERT INTO runs VALUES (?, ?, ?)", (run_id, text, time.time()))
        elif stored != text:
            old = _json_object(self.path, f"run {run_id!r} config", stored)
            new = json.loads(text)
            changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
            raise HwnasError(
                f"run {run_id!r} in {self.path} was started with a different config "
                f"(differs in: {', '.join(changed)}); use the original settings or a new run id"
            )

    def run_config(self, run_id: str) -> dict[str, Any] | None:
        row = self._stored_config(run_id)
        return None if row is None else _json_object(self.path, f"run {run_id!r} config", row)

    def _stored_config(self, run_id: str) -> str | None:
        """The run's config as stored, refusing an oversized or non-text one unread."""
        row = self._query(
            "SELECT typeof(config), length(config) FROM runs WHERE run_id = ?", (run_id,)
        ).fetchone()
        if row is None:
            return None
        if row[0] != "text" or row[1] > MAX_FIELD_CHARS:
            raise HwnasError(
                f"{self.path}: damaged run store: run {run_id!r} config is not JSON text "
                f"(a {row[0]} of length {row[1]})"
            )
        (text,) = self._query("SELECT config FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return text

    def _query(self, sql: str, parameters: tuple = ()) -> sqlite3.Cursor:
        """A read whose SQLite errors (a damaged page, a dropped table) are one line."""
        try:
            return self._conn.execute(sql, parameters)
        except sqlite3.DatabaseError as exc:
            raise HwnasError(f"{self.path}: damaged run store ({exc})") from None

    def run_ids(self) -> list[str]:
        """Run ids in creation order."""
        rows = self._conn.execute("SELECT run_id FROM runs ORDER BY created_at, run_id")
        return [r[0] for r in rows]

    def record(
        self,
        run_id: str,
        arch_key: str,
        arch: Mapping[str, Any],
        metrics: Mapping[str, float] | None,
        *,
        wall_time_s: float,
        started_at: float,
        finished_at: float,
        error: str | None = None,
    ) -> Evaluation:
        """Store one evaluation, committed before returning; ``seq`` is its arrival order.

        Recording an arch twice in one run is a bug in the caller (resume must skip stored
        archs), so it raises ValueError rather than overwriting.
        """
        # float() because metrics may be numpy scalars, which json cannot encode.
        metrics = None if metrics is None else {k: float(v) for k, v in metrics.items()}
        values = (
            arch_key,
            json.dumps(dict(arch)),
            None if metrics is None else json.dumps(metrics),
            error,
            float(wall_time_s),
            float(started_at),
            float(finished_at),
        )
        try:
            # One statement picks the next seq and inserts, so the pair is atomic.
            (seq,) = self._conn.execute(
                f"INSERT INTO evaluations ({_COLUMNS}) "
                "SELECT ?, COALESCE(MAX(seq) + 1, 0), ?, ?, ?, ?, ?, ?, ? "
                "FROM evaluations WHERE run_id = ? RETURNING seq",
                (run_id, *values, run_id),
            ).fetchall()[0]
        except sqlite3.IntegrityError:
            raise ValueError(f"run {run_id!r} already has arch {arch_key!r}") from None
        return _evaluation((run_id, seq, *values), self.path)

    def evaluations(self, run_id: str) -> list[Evaluation]:
        """All evaluations of the run in arrival order."""
        bad = self._query(
            "SELECT seq, arch_key FROM evaluations WHERE run_id = ? AND ("
            " typeof(arch) != 'text' OR length(arch) > ?"
            " OR typeof(metrics) NOT IN ('text', 'null') OR length(metrics) > ?"
            " OR typeof(arch_key) != 'text' OR length(arch_key) > ?"
            " OR typeof(error) NOT IN ('text', 'null') OR length(error) > ?"
            " OR typeof(seq) != 'integer'"
            " OR typeof(wall_time_s) NOT IN ('real', 'integer')"
            " OR typeof(started_at) NOT IN ('real', 'integer')"
            " OR typeof(finished_at) NOT IN ('real', 'integer')) LIMIT 1",
            (run_id, *(MAX_FIELD_CHARS,) * 4),
        ).fetchone()
        if bad is not None:
            raise HwnasError(
                f"{self.path}: damaged run store: evaluation {bad[0]!r} of run {run_id!r} has "
                "a field of the wrong type or size"
            )
        rows = self._query(
            f"SELECT {_COLUMNS} FROM evaluations WHERE run_id = ? ORDER BY seq", (run_id,)
        ).fetchall()
        return [_evaluation(row, self.path) for row in rows]

    def job(self, run_id: str, arch_key: str, part: str, attempt: int, state: str,
            worker: str, error: str | None = None) -> None:  # fmt: skip
        """Record attempt ``attempt`` (from 1) at the job ``part`` of ``arch_key`` as
        ``state``, committed before returning."""
        if state not in JOB_STATES:
            raise ValueError(f"job state {state!r} is not one of {JOB_STATES}")
        if not self._jobs_table:
            self._conn.execute(_JOBS)  # not executescript, which would commit a transaction
            self._jobs_table = True
        self._conn.execute(
            "INSERT OR REPLACE INTO jobs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (run_id, arch_key, part, attempt, state, worker, error, time.time()),
        )

    def jobs(self, run_id: str) -> list[dict[str, Any]]:
        """Every attempt of the run, in the order they were last updated."""
        if not self._jobs_table:
            return []
        rows = self._query(
            "SELECT arch_key, part, attempt, state, worker, error FROM jobs WHERE run_id = ? "
            "ORDER BY updated_at, arch_key, part, attempt", (run_id,)
        ).fetchall()  # fmt: skip
        names = ("arch_key", "part", "attempt", "state", "worker", "error")
        return [dict(zip(names, row, strict=True)) for row in rows]

    def attempts(self, run_id: str) -> dict[tuple[str, str], int]:
        """How many attempts each job (arch key, part) of the run has had (an attempt cut
        short by a kill included)."""
        if not self._jobs_table:
            return {}
        rows = self._query(
            "SELECT arch_key, part, MAX(attempt) FROM jobs WHERE run_id = ? "
            "GROUP BY arch_key, part", (run_id,),
        ).fetchall()  # fmt: skip
        if any(not (isinstance(k, str) and isinstance(p, str) and isinstance(n, int))
               for k, p, n in rows):  # fmt: skip
            raise HwnasError(f"{self.path}: damaged run store: a job of run {run_id!r} has a "
                             "field of the wrong type")  # fmt: skip
        return {(key, part): n for key, part, n in rows}

    def jobs_done_by_worker(self, run_id: str) -> dict[str, dict[str, int]]:
        """How many jobs of each part every worker completed: ``{worker: {part: n}}``."""
        rows = self._query(
            "SELECT worker, part, COUNT(*) FROM jobs WHERE run_id = ? AND state = 'done' "
            "GROUP BY worker, part ORDER BY worker, part", (run_id,),
        ).fetchall() if self._jobs_table else []  # fmt: skip
        done: dict[str, dict[str, int]] = {}
        for worker, part, n in rows:
            done.setdefault(worker, {})[part] = n
        return done

    def measured_by(self, run_id: str) -> dict[str, dict[str, str]]:
        """Which worker did each arch's final job of each part: ``{key: {part: worker}}``."""
        measured: dict[str, dict[str, str]] = {}
        for job in self.jobs(run_id):
            if job["state"] in ("done", "failed"):
                measured.setdefault(job["arch_key"], {})[job["part"]] = job["worker"]
        return measured

    def count(self, run_id: str) -> int:
        (n,) = self._query(
            "SELECT COUNT(*) FROM evaluations WHERE run_id = ?", (run_id,)
        ).fetchone()
        return n

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _evaluation(row: tuple, path: Path) -> Evaluation:
    """Decode a row the same way whether it was just written or read back on resume; a
    damaged row read back (not JSON, wrong JSON types) is one line naming the store, the
    run and the row."""
    run_id, seq, key, arch, metrics, error, wall_time_s, started_at, finished_at = row
    where = f"evaluation {seq} of run {run_id!r}"
    arch = _json_object(path, f"{where}: arch", arch)
    if metrics is not None:
        metrics = _json_object(path, f"{where}: metrics", metrics)
        bad = next(
            (
                k
                for k, v in metrics.items()
                if not isinstance(v, int | float) or isinstance(v, bool)
            ),
            None,
        )
        if bad is not None:
            raise HwnasError(f"{path}: damaged run store: {where}: metric {bad!r} is not a number")
    return Evaluation(
        run_id,
        seq,
        key,
        arch,
        metrics,
        error,
        wall_time_s,
        started_at,
        finished_at,
    )


def _json_object(path: Path | None, where: str, text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError, TypeError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else "not valid JSON"
        raise HwnasError(f"{path}: damaged run store: {where} is {reason}") from None
    if not isinstance(value, dict):
        raise HwnasError(
            f"{path}: damaged run store: {where} is JSON {type(value).__name__}, not an object"
        )
    return value
