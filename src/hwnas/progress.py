"""One small progress interface, so the CLI can draw bars and tests and scripts stay quiet."""

from __future__ import annotations

from typing import Any, Protocol


class ProgressTask(Protocol):
    def advance(self, n: int = 1, **fields: Any) -> None: ...
    def close(self) -> None: ...


class Progress(Protocol):
    def task(self, description: str, total: int | None) -> ProgressTask: ...


class _SilentTask:
    def advance(self, n: int = 1, **fields: Any) -> None:
        pass

    def close(self) -> None:
        pass


class SilentProgress:
    """The default: long work reports nothing."""

    def task(self, description: str, total: int | None) -> ProgressTask:
        return _SilentTask()
