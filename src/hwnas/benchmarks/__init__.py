"""Tabular benchmarks exposed as a ``Space`` plus an evaluator, so any study runs on them."""

from hwnas.benchmarks.table import TableBenchmark

__all__ = ["TableBenchmark"]
