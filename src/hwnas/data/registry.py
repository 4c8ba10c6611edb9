"""Data sets by name, so a config can say ``data: {name: cifar10, path: ...}``.

Options are checked against the loader's signature here, so a misspelt option is a one-line
``HwnasError`` naming the accepted ones instead of a ``TypeError`` traceback.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hwnas.data.cifar10 import load_cifar10
from hwnas.data.digits import load_digits
from hwnas.data.image_data import ImageData
from hwnas.data.image_folder import load_image_folder
from hwnas.errors import HwnasError


@dataclass(frozen=True)
class DatasetEntry:
    """A loader and whether it reads user files (then ``path`` is required, else refused)."""

    loader: Callable[..., ImageData]
    needs_path: bool
    summary: str


DATASETS: dict[str, DatasetEntry] = {
    "digits": DatasetEntry(load_digits, False, "scikit-learn's bundled 8x8 digits, at 32x32"),
    "cifar10": DatasetEntry(load_cifar10, True, "CIFAR-10 python batches (cifar-10-batches-py)"),
    "image-folder": DatasetEntry(load_image_folder, True, "one sub-folder of images per class"),
}


def load_dataset(
    name: str, path: str | Path | None = None, seed: int = 0, **options: Any
) -> ImageData:
    """Load data set ``name`` with its fixed, ``seed``-determined splits.

    ``options`` go to the loader (``image_size``, ``val_fraction``, ...); ``path`` is required
    for data the user supplies and refused for bundled data.
    """
    entry = DATASETS.get(name)
    if entry is None:
        raise HwnasError(f"data set {name!r} is unknown; choose from {', '.join(DATASETS)}")
    accepted = [p for p in inspect.signature(entry.loader).parameters if p not in ("path", "seed")]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise HwnasError(
            f"data set {name!r}: unknown option(s) {', '.join(unknown)}; "
            f"accepted: {', '.join(accepted)}"
        )
    if entry.needs_path:
        if path is None or str(path) == "":
            raise HwnasError(f"data set {name!r} needs a path (data.path): {entry.summary}")
        return entry.loader(Path(path).expanduser(), seed=seed, **options)
    if path is not None:
        raise HwnasError(f"data set {name!r} is bundled and takes no path, got {path}")
    return entry.loader(seed=seed, **options)
