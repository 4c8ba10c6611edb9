"""scikit-learn's bundled 8x8 handwritten digits, upsampled once to a CNN-sized input.

The default problem: it ships with scikit-learn, so ``hwnas run`` works offline with no files.
"""

from __future__ import annotations

import torch

from hwnas.data.augment import Augment
from hwnas.data.image_data import ImageData, check_image_size, resize, split_and_assemble

DEFAULT_IMAGE_SIZE = 32


def load_digits(
    seed: int = 0,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    image_size: int = DEFAULT_IMAGE_SIZE,
) -> ImageData:
    """1797 grey 8x8 digits (10 classes), bilinearly upsampled to ``image_size`` (default 32).

    Why 32: at the native 8x8 a MobileNet-style network with four stride-2 stages would be at
    1x1 after its third, and there would be no smaller resolution left to trade for latency.
    At 32x32 the geometry matches CIFAR-10, so one super-network configuration serves both,
    and an elastic resolution of 24, 28 or 32 changes every layer's MACs (and latency) by
    (r/32)^2, i.e. 0.56x to 1x. The images carry only 8x8 of detail, so shrinking costs
    accuracy mainly through the network (fewer positions per stage, train/test resolution
    mismatch), not through lost pixels: the trade-off is real but gentler than on CIFAR-10.
    Upsampling happens once here, not per batch, so training pays nothing for it.

    Splits are stratified and fixed by ``seed``; the training augmentation is a shift of up to
    one original pixel (``image_size // 8``) and no flip, since a mirrored digit is another
    symbol or none.
    """
    from sklearn.datasets import load_digits as sklearn_digits

    check_image_size(image_size)
    bunch = sklearn_digits()
    images = torch.as_tensor(bunch.images, dtype=torch.float32)[:, None] / 16.0
    images = resize(images, image_size)
    labels = bunch.target.astype("int64")
    return split_and_assemble(
        "digits",
        images,
        labels,
        seed,
        val_fraction,
        test_fraction,
        class_names=tuple(str(d) for d in range(10)),
        augment=Augment(pad=image_size // 8, hflip=False),
    )
