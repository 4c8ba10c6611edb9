"""Data sets by name, so a config can say ``data: {name: cifar10, path: ...}``.

Each entry says which task its data serves, so the pipeline can tell what a run will measure
(and refuse a family that cannot serve it) before loading anything. Options are checked
against the loader's signature here, so a misspelt option is a one-line ``HwnasError``
naming the accepted ones instead of a ``TypeError`` traceback.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from hwnas.data.cifar10 import load_cifar10
from hwnas.data.digits import load_digits
from hwnas.data.image_folder import load_image_folder
from hwnas.data.text import load_python_sources
from hwnas.errors import HwnasError


@dataclass(frozen=True)
class DatasetEntry:
    """A loader, the task its data serves, and whether it reads user files: ``path`` is then
    required, refused (bundled data) or optional (bundled unless a path is given)."""

    loader: Callable[..., Any]
    task: Literal["classification", "language-model"]
    path: Literal["required", "refused", "optional"]
    summary: str


DATASETS: dict[str, DatasetEntry] = {
    "digits": DatasetEntry(load_digits, "classification", "refused",
                           "scikit-learn's bundled 8x8 digits, at 32x32"),
    "cifar10": DatasetEntry(load_cifar10, "classification", "required",
                            "CIFAR-10 python batches (cifar-10-batches-py)"),
    "image-folder": DatasetEntry(load_image_folder, "classification", "required",
                                 "one sub-folder of images per class"),
    "python": DatasetEntry(load_python_sources, "language-model", "optional",
                           "the .py files of this Python's standard library, or of data.path"),
}  # fmt: skip


def dataset_entry(name: str) -> DatasetEntry:
    entry = DATASETS.get(name)
    if entry is None:
        raise HwnasError(f"data set {name!r} is unknown; choose from {', '.join(DATASETS)}")
    return entry


def load_dataset(name: str, path: str | Path | None = None, seed: int = 0, **options: Any):
    """Load data set ``name`` with its fixed, ``seed``-determined splits.

    ``options`` go to the loader (``image_size``, ``context``, ...); ``path`` is required
    for data the user supplies and refused for bundled data.
    """
    entry = dataset_entry(name)
    accepted = [p for p in inspect.signature(entry.loader).parameters if p not in ("path", "seed")]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise HwnasError(
            f"data set {name!r}: unknown option(s) {', '.join(unknown)}; "
            f"accepted: {', '.join(accepted)}"
        )
    given = path is not None and str(path) != ""
    if entry.path == "required" and not given:
        raise HwnasError(f"data set {name!r} needs a path (data.path): {entry.summary}")
    if entry.path == "refused" and path is not None:
        raise HwnasError(f"data set {name!r} is bundled and takes no path, got {path}")
    if given:
        return entry.loader(Path(path).expanduser(), seed=seed, **options)
    return entry.loader(seed=seed, **options)
