"""The evaluator contract shared by tables, measured latency, accuracy and the rest."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from hwnas.space import Arch


class InvalidArch(Exception):
    """The arch cannot be evaluated (e.g. a combination missing from a table).

    The study records it as invalid with this message and goes on; it is not a crash.
    """


@runtime_checkable
class Evaluator(Protocol):
    """Takes an arch, returns named metrics; raises ``InvalidArch`` for archs it cannot score."""

    metrics: tuple[str, ...]

    def evaluate(self, arch: Arch) -> dict[str, float]: ...
