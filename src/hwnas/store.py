"""SQLite run store: the source of truth for resume.

Each evaluation is committed the moment it completes, so a killed run loses at most the
evaluations still in flight. WAL with ``synchronous=NORMAL`` keeps every commit safe against a
process crash while staying cheap enough to commit once per record.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hwnas.errors import HwnasError

SCHEMA_VERSION = 1

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

    def open_run(self, run_id: str, config: Mapping[str, Any]) -> None:
        """Create the run, or accept it unchanged; a changed config refuses the resume."""
        text = json.dumps(config, sort_keys=True)
        row = self._conn.execute("SELECT config FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            self._conn.execute("INSERT INTO runs VALUES (?, ?, ?)", (run_id, text, time.time()))
        elif row[0] != text:
            old, new = json.loads(row[0]), json.loads(text)
            changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
            raise HwnasError(
                f"run {run_id!r} in {self.path} was started with a different config "
                f"(differs in: {', '.join(changed)}); use the original settings or a new run id"
            )

    def run_config(self, run_id: str) -> dict[str, Any] | None:
        row = self._conn.execute("SELECT config FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return None if row is None else json.loads(row[0])

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
        return _evaluation((run_id, seq, *values))

    def evaluations(self, run_id: str) -> list[Evaluation]:
        """All evaluations of the run in arrival order."""
        rows = self._conn.execute(
            f"SELECT {_COLUMNS} FROM evaluations WHERE run_id = ? ORDER BY seq", (run_id,)
        )
        return [_evaluation(row) for row in rows]

    def count(self, run_id: str) -> int:
        (n,) = self._conn.execute(
            "SELECT COUNT(*) FROM evaluations WHERE run_id = ?", (run_id,)
        ).fetchone()
        return n

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _evaluation(row: tuple) -> Evaluation:
    """Decode a row the same way whether it was just written or read back on resume."""
    run_id, seq, key, arch, metrics, error, wall_time_s, started_at, finished_at = row
    return Evaluation(
        run_id,
        seq,
        key,
        json.loads(arch),
        None if metrics is None else json.loads(metrics),
        error,
        wall_time_s,
        started_at,
        finished_at,
    )
