"""hwnas: hardware-aware neural architecture search.

``hwnas.optimize`` searches any space with any function in one call; ``hwnas.run.run_job``
is the main job (``hwnas run``). Imported on first use, so ``hwnas --version`` stays fast.
"""

from typing import Any

__version__ = "0.1.0"
__all__ = ["Space", "optimize"]


def __getattr__(name: str) -> Any:
    if name == "optimize":
        from hwnas.problem import optimize

        return optimize
    if name == "Space":
        from hwnas.space import Space

        return Space
    raise AttributeError(f"module 'hwnas' has no attribute {name!r}")
