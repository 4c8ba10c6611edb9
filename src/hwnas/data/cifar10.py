"""CIFAR-10 from its official python batches (``cifar-10-batches-py``), without ``pickle.load``.

Each batch is a pickled dict with ``data`` (uint8, N x 3072: 1024 red, 1024 green, 1024 blue
values, rows top to bottom) and ``labels`` (N ints). The files come from the user, so they go
through ``safe_pickle``, which refuses anything but plain data.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from hwnas.data.augment import Augment
from hwnas.data.image_data import ImageData, assemble, check_image_size, resize
from hwnas.data.safe_pickle import load_pickle_file
from hwnas.data.splits import stratified_split
from hwnas.errors import HwnasError

CLASS_NAMES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
NATIVE_SIZE = 32
_PIXELS = 3 * NATIVE_SIZE * NATIVE_SIZE
_FOLDER = "cifar-10-batches-py"


def find_batches(path: Path) -> tuple[list[Path], Path]:
    """The training batches ``data_batch_1..k`` (in order) and ``test_batch`` under ``path``.

    ``path`` may be the batch folder itself or the folder that holds ``cifar-10-batches-py``.
    The official set has five training batches; any unbroken run from ``data_batch_1`` is used.
    """
    if not path.is_dir():
        raise HwnasError(f"{path}: CIFAR-10 folder not found")
    if (path / _FOLDER).is_dir() and not (path / "test_batch").exists():
        path = path / _FOLDER
    numbers = sorted(
        int(m.group(1)) for p in path.iterdir() if (m := re.fullmatch(r"data_batch_(\d+)", p.name))
    )
    if not numbers or numbers[0] != 1:
        raise HwnasError(f"{path / 'data_batch_1'}: CIFAR-10 training batch not found")
    if numbers != list(range(1, len(numbers) + 1)):
        missing = next(i for i in range(1, numbers[-1] + 1) if i not in numbers)
        raise HwnasError(f"{path / f'data_batch_{missing}'}: CIFAR-10 training batch not found")
    test = path / "test_batch"
    if not test.is_file():
        raise HwnasError(f"{test}: CIFAR-10 test batch not found")
    return [path / f"data_batch_{i}" for i in numbers], test


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch as ``(uint8 images (N, 3, 32, 32), int64 labels (N,))``, checked for shape."""
    batch = load_pickle_file(path)
    if not isinstance(batch, dict):
        raise HwnasError(f"{path}: expected a pickled dict, got {type(batch).__name__}")
    batch = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in batch.items()}
    if "data" not in batch or "labels" not in batch:
        raise HwnasError(f"{path}: CIFAR-10 batch needs 'data' and 'labels' entries")
    data, labels = batch["data"], batch["labels"]
    if isinstance(data, bytes | bytearray):
        if len(data) % _PIXELS:
            raise HwnasError(f"{path}: 'data' holds {len(data)} bytes, not a multiple of {_PIXELS}")
        data = np.frombuffer(data, dtype=np.uint8).reshape(-1, _PIXELS)
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8):
        raise HwnasError(f"{path}: 'data' must be a uint8 array, got {_describe(data)}")
    if data.ndim != 2 or data.shape[1] != _PIXELS:
        raise HwnasError(f"{path}: 'data' must have shape (N, {_PIXELS}), got {data.shape}")
    if not (
        isinstance(labels, list | np.ndarray)
        and all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in labels)
    ):
        raise HwnasError(f"{path}: 'labels' must be a list of integers")
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if len(labels) != len(data):
        raise HwnasError(f"{path}: {len(data)} images but {len(labels)} labels")
    if len(labels) and (labels.min() < 0 or labels.max() >= len(CLASS_NAMES)):
        raise HwnasError(f"{path}: labels must be in 0..{len(CLASS_NAMES) - 1}")
    return data.reshape(-1, 3, NATIVE_SIZE, NATIVE_SIZE), labels


def _describe(value: object) -> str:
    if isinstance(value, np.ndarray):
        return f"array of {value.dtype}"
    return type(value).__name__


def _to_float(images: np.ndarray, image_size: int) -> torch.Tensor:
    images = np.require(images, requirements="CW")  # torch refuses read-only buffers
    return resize(torch.from_numpy(images).float().div_(255.0), image_size)


def load_cifar10(
    path: str | Path,
    seed: int = 0,
    val_fraction: float = 0.1,
    image_size: int = NATIVE_SIZE,
) -> ImageData:
    """CIFAR-10: validation carved (stratified, by ``seed``) from the training batches; the
    official ``test_batch`` is the test split. Images are resized if ``image_size`` is not 32.
    Training augmentation: shift by up to 4 pixels (at 32) and horizontal flips.
    """
    check_image_size(image_size)
    train_files, test_file = find_batches(Path(path))
    parts = [read_batch(p) for p in train_files]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    test_images, test_labels = read_batch(test_file)
    if len(test_labels) == 0:
        raise HwnasError(f"{test_file}: no images")
    train, val, _ = stratified_split(labels, seed, val_fraction)
    return assemble(
        "cifar10",
        (_to_float(images[train], image_size), labels[train]),
        (_to_float(images[val], image_size), labels[val]),
        (_to_float(test_images, image_size), test_labels),
        class_names=CLASS_NAMES,
        augment=Augment(pad=image_size // 8, hflip=True),
    )
