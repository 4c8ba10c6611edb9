"""NAS-Bench-Suite-Zero's published zero-cost proxy scores on NAS-Bench-201 cells: what
hwnas's own proxies are checked against (``hwnas bench proxies``).

The file (``zc_nasbench201.json.gz``) maps a data set to cells, each written as six op ids
in NASLib's op and edge order, with its validation accuracy and, per proxy, a score and
the seconds it took.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from hwnas.errors import HwnasError
from hwnas.families.nb201.cell import EDGES
from hwnas.files import MiB, read_inflated

NASLIB_OPERATIONS = ("skip_connect", "none", "nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3")
NASLIB_EDGES = ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3))
MAX_BYTES = 256 * MiB


@dataclass(frozen=True)
class PublishedCell:
    """``ops``: per edge name, its operation; ``accuracy``: validation accuracy in %;
    ``scores``: per proxy, the published score (-inf where it was undefined: one cell's
    nwot)."""

    ops: dict[str, str]
    accuracy: float
    scores: dict[str, float]


def naslib_cell(key: str) -> dict[str, str]:
    """``"(0, 2, 3, 2, 3, 1)"`` -> the cell's op per edge name; anything else: HwnasError."""
    parts = key.strip().strip("()").split(",")
    ids = [part.strip() for part in parts]
    if len(ids) != len(NASLIB_EDGES) or not all(i in "01234" and len(i) == 1 for i in ids):
        raise HwnasError(f"not a NAS-Bench-201 cell in NASLib's notation: {key[:60]!r}")
    ops = {edge: NASLIB_OPERATIONS[int(i)] for edge, i in zip(NASLIB_EDGES, ids, strict=True)}
    return {f"edge_{i}_{j}": ops[(i, j)] for i, j in EDGES}


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return None if math.isnan(value) else float(value)


def load_published(path: Path, dataset: str) -> list[PublishedCell]:
    """The cells of ``dataset`` in the file at ``path``; a file of another shape is one line
    naming the file and the first entry that does not fit."""
    data = read_inflated(path, "proxy scores", MAX_BYTES)
    try:
        content = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise HwnasError(f"proxy scores {path}: not JSON ({type(exc).__name__})") from None
    if not isinstance(content, dict):
        raise HwnasError(f"proxy scores {path}: expected an object of data sets")
    if dataset not in content:
        known = ", ".join(sorted(map(str, content))) or "none"
        raise HwnasError(f"proxy scores {path}: no data set {dataset!r} (has: {known})")
    entries = content[dataset]
    if not isinstance(entries, dict) or not entries:
        raise HwnasError(f"proxy scores {path}: {dataset} is not an object of cells")
    cells = []
    for key, entry in entries.items():
        where = f"proxy scores {path}: {dataset} cell {key[:60]!r}"
        if not isinstance(entry, dict) or _number(entry.get("val_accuracy")) is None:
            raise HwnasError(f"{where}: no numeric val_accuracy")
        try:
            ops = naslib_cell(key)
        except HwnasError as exc:
            raise HwnasError(f"{where}: {exc}") from None
        scores = {name: _number(value.get("score")) for name, value in entry.items()
                  if isinstance(value, dict)}  # fmt: skip
        bad = next((name for name, score in scores.items() if score is None), None)
        if bad is not None:
            raise HwnasError(f"{where}: proxy {bad!r} has no numeric score")
        cells.append(PublishedCell(ops, float(entry["val_accuracy"]), scores))  # type: ignore[arg-type]
    return cells
