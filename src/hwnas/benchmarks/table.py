"""A benchmark from any table: some columns are choices, some are metrics.

The space is the product of the choice columns' values; a combination missing from the table
is an invalid arch (reported, not crashed on).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from hwnas.errors import HwnasError, one_line
from hwnas.evaluate.base import InvalidArch
from hwnas.files import MiB, read_inflated
from hwnas.pareto import Objective, feasible_mask, objective_matrix, pareto_mask
from hwnas.space import Arch, Choice, Space, Value, categorical, ordinal

MAX_TABLE_BYTES = 512 * MiB
"""Largest table read, compressed or not (NAS-Bench-201's is 4 MiB as CSV): a bigger file, or
a gzip that inflates past this (a zip bomb), is refused instead of exhausting memory."""


@dataclass(frozen=True)
class GroundTruth:
    """What scoring a search on a benchmark needs, in minimisation form: each objective's
    best and median over the whole space (the normalisation), and the true front's points
    and arch keys (feasible archs only)."""

    best: np.ndarray
    median: np.ndarray
    front: np.ndarray
    front_keys: set[str]


class Benchmark(Protocol):
    """A searchable problem whose answer is known: an evaluator (``metrics``, ``evaluate``)
    over ``space`` that can say its ground truth for given objectives."""

    name: str
    metrics: tuple[str, ...]
    space: Space

    def evaluate(self, arch: Arch) -> dict[str, float]: ...

    def truth(self, objectives: Sequence[Objective]) -> GroundTruth: ...


def read_csv(path: str | Path) -> list[dict[str, str]]:
    """Rows of a CSV file, gzip-compressed or not; unreadable input is a user error, and so
    is a row with more or fewer fields than the header (named by its row number)."""
    path = Path(path)
    data = read_inflated(path, "table", MAX_TABLE_BYTES)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise HwnasError(
            f"table {path}: not UTF-8 text (byte {data[exc.start]:#04x} at offset {exc.start})"
        ) from None
    try:
        reader = csv.reader(io.StringIO(text, newline=""))
        header = next(reader, None)
        records = list(reader)
    except csv.Error as exc:
        raise HwnasError(f"table {path}: cannot read as CSV ({one_line(exc)})") from None
    if not header or not any(h.strip() for h in header):
        raise HwnasError(f"table {path}: empty (no header row)")
    duplicate = next((h for i, h in enumerate(header) if h in header[:i]), None)
    if duplicate is not None:
        raise HwnasError(f"table {path}: column {duplicate!r} appears twice in the header")
    rows = []
    for line, record in enumerate(records, start=2):
        if not record:  # a blank line
            continue
        if len(record) != len(header):
            raise HwnasError(
                f"table {path}:{line}: {len(record)} fields, the header has {len(header)}"
            )
        rows.append(dict(zip(header, record, strict=True)))
    if not rows:
        raise HwnasError(f"table {path}: no data rows")
    return rows


def _parse(text: str) -> Value:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _choice_for(name: str, raw: Sequence[str]) -> Choice:
    parsed = {_parse(v) for v in raw}
    odd = next((v for v in parsed if isinstance(v, float) and not math.isfinite(v)), None)
    if odd is not None:
        raise HwnasError(f"choice column {name!r} holds {odd}, not a value an arch can take")
    values = sorted(parsed, key=lambda v: (isinstance(v, str), v))
    if all(isinstance(v, int | float) for v in values):
        return ordinal(name, values)
    return categorical(name, sorted({str(v) for v in raw}))


class TableBenchmark:
    """A lookup-table evaluator over the space spanned by its choice columns."""

    def __init__(
        self,
        rows: Sequence[Mapping[str, str]],
        choices: Sequence[str] | Space,
        metrics: Mapping[str, str],
        name: str = "table",
        source: str = "<rows>",
    ) -> None:
        """``metrics`` maps a metric name to the column holding it.

        ``choices`` names the choice columns, whose values span the space (options sorted),
        or is the space itself where one is defined elsewhere, with its option order and
        domain features (its choices are then the columns and its name the table's).
        """
        given = choices if isinstance(choices, Space) else None
        if given is not None:
            choices, name = given.names, given.name
        if not choices:
            raise HwnasError(f"{source}: no choice columns given")
        columns = set(rows[0])
        for column in [*choices, *metrics.values()]:
            if column not in columns:
                raise HwnasError(
                    f"{source}: no column {column!r} (columns: {', '.join(sorted(columns))})"
                )
        self.name = name
        self.metrics = tuple(metrics)
        try:
            self.space = given or Space(
                [_choice_for(c, [r[c] for r in rows]) for c in choices], name=name
            )
        except HwnasError as exc:
            raise HwnasError(f"{source}: {exc}") from None
        self._table: dict[str, dict[str, float]] = {}
        first_line: dict[str, int] = {}
        for line, row in enumerate(rows, start=2):
            try:
                arch = self.space.make({c: self._value(c, row[c]) for c in choices})
            except HwnasError as exc:
                raise HwnasError(f"{source}:{line}: {exc}") from None
            if arch.key in first_line:
                raise HwnasError(
                    f"{source}:{line}: the same arch as row {first_line[arch.key]} "
                    f"({', '.join(f'{c}={row[c]}' for c in choices)}); each arch needs one row"
                )
            first_line[arch.key] = line
            values = {}
            for metric, column in metrics.items():
                try:
                    values[metric] = float(row[column])
                except (ValueError, TypeError):
                    raise HwnasError(
                        f"{source}:{line}: column {column!r} is not a number: {row[column]!r}"
                    ) from None
            if all(math.isfinite(v) for v in values.values()):
                self._table[arch.key] = values
        if not self._table:
            raise HwnasError(
                f"{source}: no row has a finite value in every metric column "
                f"({', '.join(metrics.values())})"
            )

    def _value(self, choice: str, text: str) -> Value:
        c = self.space.choices[self.space.names.index(choice)]
        return _parse(text) if c.ordinal else text

    @classmethod
    def from_csv(
        cls, path: str | Path, choices: Sequence[str], metrics: Sequence[str]
    ) -> TableBenchmark:
        return cls(
            read_csv(path), choices, {m: m for m in metrics}, name=Path(path).name, source=str(path)
        )

    # -- the evaluator contract ----------------------------------------------------------
    def evaluate(self, arch: Arch) -> dict[str, float]:
        try:
            return dict(self._table[arch.key])
        except KeyError:
            raise InvalidArch(f"{arch.key} is not in the table") from None

    # -- ground truth for benchmarking searchers ------------------------------------------
    def truth(self, objectives: Sequence[Objective]) -> GroundTruth:
        """Every row counts: the best and median over all of them, the front over the rows
        within every limit."""
        keys, values = self.entries()
        metrics = [dict(zip(self.metrics, row, strict=True)) for row in values]
        F = objective_matrix(metrics, objectives)
        feasible = feasible_mask(metrics, objectives)
        mask = np.zeros(len(F), dtype=bool)
        mask[feasible] = pareto_mask(F[feasible])
        front_keys = {k for k, on in zip(keys, mask, strict=True) if on}
        return GroundTruth(F.min(axis=0), np.median(F, axis=0), F[mask], front_keys)

    def entries(self) -> tuple[list[str], np.ndarray]:
        """Every valid arch key and its metric row (columns in ``self.metrics`` order)."""
        keys = list(self._table)
        values = np.array([[self._table[k][m] for m in self.metrics] for k in keys])
        return keys, values
