"""A benchmark from any table: some columns are choices, some are metrics.

The space is the product of the choice columns' values; a combination missing from the table
is an invalid arch (reported, not crashed on).
"""

from __future__ import annotations

import csv
import gzip
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from hwnas.errors import HwnasError
from hwnas.evaluate.base import InvalidArch
from hwnas.space import Arch, Choice, Space, Value, categorical, ordinal


def read_csv(path: str | Path) -> list[dict[str, str]]:
    """Rows of a CSV file, gzip-compressed or not; unreadable input is a user error."""
    path = Path(path)
    if not path.is_file():
        raise HwnasError(f"{path}: no such file")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", newline="") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error, EOFError) as exc:
        raise HwnasError(f"{path}: cannot read as CSV ({exc})") from None
    if not rows:
        raise HwnasError(f"{path}: no data rows")
    return rows


def _parse(text: str) -> Value:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _choice_for(name: str, raw: Sequence[str]) -> Choice:
    values = sorted({_parse(v) for v in raw}, key=lambda v: (isinstance(v, str), v))
    if all(isinstance(v, int | float) for v in values):
        return ordinal(name, values)
    return categorical(name, sorted({str(v) for v in raw}))


class TableBenchmark:
    """A lookup-table evaluator over the space spanned by its choice columns."""

    def __init__(
        self,
        rows: Sequence[Mapping[str, str]],
        choices: Sequence[str],
        metrics: Mapping[str, str],
        name: str = "table",
        source: str = "<rows>",
        encoder: Callable[[np.ndarray], np.ndarray] | None = None,
        options: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        """``metrics`` maps a metric name to the column holding it.

        ``options`` fixes the option order of categorical choice columns where the order
        means something to ``encoder``; otherwise options are sorted.
        """
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
        self.space = Space(
            [
                categorical(c, options[c])
                if options and c in options
                else _choice_for(c, [r[c] for r in rows])
                for c in choices
            ],
            name=name,
            encoder=encoder,
        )
        self._table: dict[str, dict[str, float]] = {}
        for line, row in enumerate(rows, start=2):
            try:
                arch = self.space.make({c: self._value(c, row[c]) for c in choices})
            except HwnasError as exc:
                raise HwnasError(f"{source}:{line}: {exc}") from None
            values = {}
            for metric, column in metrics.items():
                try:
                    values[metric] = float(row[column])
                except ValueError:
                    raise HwnasError(
                        f"{source}:{line}: column {column!r} is not a number: {row[column]!r}"
                    ) from None
            if all(math.isfinite(v) for v in values.values()):
                self._table[arch.key] = values

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
    def entries(self) -> tuple[list[str], np.ndarray]:
        """Every valid arch key and its metric row (columns in ``self.metrics`` order)."""
        keys = list(self._table)
        values = np.array([[self._table[k][m] for m in self.metrics] for k in keys])
        return keys, values
