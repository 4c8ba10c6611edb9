"""Training-batch augmentation on tensors: random shift (pad and crop) and optional flip.

It works on whole normalised NCHW batches with a caller-owned ``torch.Generator``, so the
trainer draws every random number from one seeded source and a run is repeatable; it needs
no image library and runs on whatever device the batch is on.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def random_shift(images: torch.Tensor, generator: torch.Generator, pad: int) -> torch.Tensor:
    """Shift each image by up to ``pad`` pixels in each direction, filling with zeros.

    The batch is normalised, so a zero fill is the training-set mean colour: the new border
    looks like average background rather than a black frame.
    """
    if pad <= 0:
        return images
    n, _, height, width = images.shape
    padded = torch.nn.functional.pad(images, (pad, pad, pad, pad))
    offsets = torch.randint(0, 2 * pad + 1, (2, n), generator=generator, device=generator.device)
    offsets = offsets.to(images.device)
    rows = offsets[0][:, None] + torch.arange(height, device=images.device)  # (N, H)
    cols = offsets[1][:, None] + torch.arange(width, device=images.device)  # (N, W)
    batch = torch.arange(n, device=images.device)[:, None, None, None]
    channel = torch.arange(images.shape[1], device=images.device)[None, :, None, None]
    return padded[batch, channel, rows[:, None, :, None], cols[:, None, None, :]]


def random_hflip(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror a random half of the images left to right."""
    flip = torch.rand(len(images), generator=generator, device=generator.device) < 0.5
    flip = flip.to(images.device)[:, None, None, None]
    return torch.where(flip, images.flip(-1), images)


@dataclass(frozen=True)
class Augment:
    """A dataset's training augmentation: ``augment(batch, generator) -> batch`` (same shape).

    ``hflip`` is off for data whose meaning changes in a mirror (digits, text).
    """

    pad: int = 0
    hflip: bool = False

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        images = random_shift(images, generator, self.pad)
        if self.hflip:
            images = random_hflip(images, generator)
        return images
