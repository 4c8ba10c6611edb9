"""A fixed subset of training images for re-estimating batch-norm statistics.

Every extracted sub-network recalibrates its batch-norm layers before it is scored; using the
same images for all of them (fixed by the seed) keeps their accuracies comparable.
"""

from __future__ import annotations

import numpy as np
import torch

from hwnas.data.image_data import ImageData
from hwnas.errors import HwnasError

_STREAM = 0xCA1  # keeps this draw independent of the split drawn from the same seed


def calibration_subset(data: ImageData, n: int, seed: int) -> torch.Tensor:
    """``n`` training images (all of them if the train split is smaller), chosen by ``seed``."""
    if n < 1:
        raise HwnasError(f"calibration subset size must be at least 1, got {n}")
    images = data.train.tensors[0]
    n = min(n, len(images))
    rng = np.random.default_rng([seed, _STREAM])
    index = torch.as_tensor(rng.choice(len(images), size=n, replace=False))
    return images[index].contiguous()
