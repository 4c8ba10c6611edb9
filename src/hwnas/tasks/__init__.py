"""Tasks: what a super-network learns and how it is judged; one registry, one file each.

A data set (``hwnas.data.DATASETS``) names the task its data serves; ``TASKS`` maps that name
to the class wrapping the loaded data, so a run knows its quality metrics, and whether its
family can serve it, before any data is read.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from hwnas.data.registry import dataset_entry, load_dataset
from hwnas.tasks.base import InputSpec, PredictsLastDim, Task, TaskSpec
from hwnas.tasks.classification import ImageClassification
from hwnas.tasks.language import LanguageModel

TASKS: dict[str, type[Task]] = {
    "classification": ImageClassification,
    "language-model": LanguageModel,
}


def task_type(data_name: str) -> type[Task]:
    """The task a data set serves, without loading it."""
    return TASKS[dataset_entry(data_name).task]


def expected_spec(data_name: str, options: Mapping[str, Any]) -> TaskSpec:
    """The ``TaskSpec`` data set ``data_name`` will give with loader ``options``, as far as the
    options decide it, without reading any data: a config's super-network is checked
    against it before the minutes of loading and training."""
    parameters = inspect.signature(dataset_entry(data_name).loader).parameters
    values = {k: p.default for k, p in parameters.items() if p.default is not p.empty}
    return task_type(data_name).expected_spec({**values, **options})


def load_task(data_name: str, path: str | None, seed: int, **options: Any) -> Task:
    """Load data set ``data_name`` (``options`` go to its loader) as the task it serves."""
    return task_type(data_name)(load_dataset(data_name, path, seed=seed, **options))


__all__ = [
    "TASKS",
    "LanguageModel",
    "ImageClassification",
    "InputSpec",
    "PredictsLastDim",
    "Task",
    "TaskSpec",
    "expected_spec",
    "load_task",
    "task_type",
]
