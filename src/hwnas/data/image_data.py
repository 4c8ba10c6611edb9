"""The common result of every loader: normalised NCHW tensors in fixed train/val/test splits.

Loaders only have to produce float images in [0, 1] and integer labels; resizing, the
per-channel normalisation (statistics from the train split only, so nothing about the
validation or test images leaks into training) and the packaging live here once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import TensorDataset

from hwnas.data.augment import Augment
from hwnas.data.splits import stratified_split
from hwnas.errors import HwnasError


@dataclass(frozen=True)
class ImageData:
    """A classification problem ready for training and search.

    ``train``, ``val`` and ``test`` hold ``(x, y)``: x float32 (N, C, H, W), normalised with
    ``mean``/``std`` (per channel, from the train split); y int64 in ``range(num_classes)``.
    ``augment`` is the training augmentation that suits this data.
    """

    name: str
    train: TensorDataset
    val: TensorDataset
    test: TensorDataset
    num_classes: int
    in_channels: int
    image_size: int
    class_names: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augment: Augment

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """One image's shape, (channels, size, size): what a sub-network is fed."""
        return self.in_channels, self.image_size, self.image_size


def check_image_size(image_size: int) -> None:
    """Refuse sizes a convolutional network cannot use."""
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 8:
        raise HwnasError(f"image_size must be an integer of at least 8, got {image_size!r}")


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize of an NCHW float batch to ``size`` x ``size``, antialiased to shrink."""
    if images.shape[-2:] == (size, size):
        return images
    shrinking = size < max(images.shape[-2:])
    return torch.nn.functional.interpolate(
        images, size=(size, size), mode="bilinear", align_corners=False, antialias=shrinking
    )


def assemble(
    name: str,
    train: tuple[torch.Tensor, np.ndarray],
    val: tuple[torch.Tensor, np.ndarray],
    test: tuple[torch.Tensor, np.ndarray],
    class_names: tuple[str, ...],
    augment: Augment,
) -> ImageData:
    """Normalise three ``(images in [0, 1], labels)`` splits with train statistics and wrap them.

    Float32 image tensors are normalised in place (CIFAR-10 is 600 MB as floats; one copy is
    enough), so callers hand over tensors they no longer need.
    """
    train_x = train[0].float()
    mean = train_x.mean(dim=(0, 2, 3))
    std = train_x.std(dim=(0, 2, 3)).clamp_min(1e-6)  # a constant channel must not divide by 0

    def tensors(split: tuple[torch.Tensor, np.ndarray]) -> TensorDataset:
        x = split[0].float().sub_(mean[:, None, None]).div_(std[:, None, None])
        y = torch.as_tensor(np.asarray(split[1]), dtype=torch.int64)
        return TensorDataset(x.contiguous(), y)

    return ImageData(
        name=name,
        train=tensors(train),
        val=tensors(val),
        test=tensors(test),
        num_classes=len(class_names),
        in_channels=int(train_x.shape[1]),
        image_size=int(train_x.shape[-1]),
        class_names=tuple(class_names),
        mean=tuple(float(v) for v in mean),
        std=tuple(float(v) for v in std),
        augment=augment,
    )


def split_and_assemble(
    name: str,
    images: torch.Tensor,
    labels: np.ndarray,
    seed: int,
    val_fraction: float,
    test_fraction: float,
    class_names: tuple[str, ...],
    augment: Augment,
) -> ImageData:
    """``assemble`` for data that ships as one pool: train, validation and test carved from
    it by the seeded stratified split."""
    train, val, test = stratified_split(labels, seed, val_fraction, test_fraction)
    return assemble(
        name,
        (images[train], labels[train]),
        (images[val], labels[val]),
        (images[test], labels[test]),
        class_names=class_names,
        augment=augment,
    )
