"""What a recorded metric means: its unit and a sentence, for reports, help and errors.

Evaluators and tasks declare their metrics as ``Metric``; the registry collects them, so the
names a run accepts and the units a report prints come from one declaration.
"""

from __future__ import annotations

from typing import NamedTuple


class Metric(NamedTuple):
    """``integer``: counts (MACs, parameters, bytes) that are printed without decimals."""

    name: str
    unit: str
    description: str
    integer: bool = False

    def to_dict(self) -> dict[str, str | bool]:
        return {"unit": self.unit, "description": self.description, "integer": self.integer}
