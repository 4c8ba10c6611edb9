"""Evaluators: small objects that turn an arch into named metrics; they know nothing of search."""

from hwnas.evaluate.base import Evaluator, InvalidArch

__all__ = ["Evaluator", "InvalidArch"]
