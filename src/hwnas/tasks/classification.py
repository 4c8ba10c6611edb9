"""Image classification: digits, CIFAR-10 batches or a folder of images, judged by top-1."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import nn

from hwnas.data.calibration import calibration_subset
from hwnas.data.image_data import ImageData
from hwnas.metrics import Metric
from hwnas.tasks.base import InputSpec, PredictsLastDim, Split, TaskSpec


class ImageClassification(PredictsLastDim):
    """Class logits ``(batch, classes)`` from normalised images; quality is top-1 (%)."""

    quality_metrics = (Metric("accuracy", "%", "top-1 accuracy"),)
    default_objective = "accuracy:max"
    default_label_smoothing = 0.1

    def __init__(self, data: ImageData) -> None:
        self.data = data
        self.name = data.name
        self.spec = TaskSpec(
            "classification", InputSpec("image", data.input_shape), data.num_classes
        )

    @classmethod
    def expected_spec(cls, options: Mapping[str, Any]) -> TaskSpec:
        """The spec once data loaded with ``options`` (the loader's defaults filled in) is
        read, as far as options decide it: the image size. Channels and classes are known
        only from the data; 3 and 10 stand in, so a config is checked before loading."""
        size = options.get("image_size", 32)
        return TaskSpec("classification", InputSpec("image", (3, size, size)), 10)

    def split_sizes(self) -> dict[str, dict[str, Any]]:
        return {name: {"size": len(getattr(self.data, name)), "unit": "images"}
                for name in ("train", "val", "test")}  # fmt: skip

    def preprocessing(self) -> dict[str, Any]:
        """Pixels scaled to [0, 1], resized bilinearly to the data set's size (then, by the
        user, to an exported model's own resolution), minus ``mean``, over ``std``."""
        data = self.data
        return {"input": "image", "layout": "NCHW", "dtype": "float32", "pixel_range": [0, 1],
                "resize": "bilinear", "image_size": data.image_size, "mean": list(data.mean),
                "std": list(data.std), "class_names": list(data.class_names)}  # fmt: skip

    def deployment_files(self) -> dict[str, bytes]:
        return {}  # the preprocessing is all numbers

    def identity(self) -> dict[str, Any]:
        return {"task": "classification", "data": self.name, "input": list(self.spec.input.shape)}

    def steps_per_epoch(self, batch_size: int) -> int:
        return math.ceil(len(self.data.train) / batch_size)

    def train_batches(
        self, batch_size: int, generator: torch.Generator
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One pass over the training split in a random order, augmented as suits the data."""
        images, labels = self.data.train.tensors
        order = torch.randperm(len(images), generator=generator)
        for step in range(self.steps_per_epoch(batch_size)):
            batch = order[step * batch_size : (step + 1) * batch_size]
            yield self.data.augment(images[batch], generator), labels[batch]

    def calibration_inputs(self, n: int, seed: int) -> torch.Tensor:
        return calibration_subset(self.data, n, seed)

    @torch.no_grad()
    def quality(self, module: nn.Module, split: Split = "val", batch_size: int = 512) -> dict:
        images, labels = getattr(self.data, split).tensors
        module.eval()
        right = 0
        for start in range(0, len(images), batch_size):
            hits, _ = self.correct(
                module(images[start : start + batch_size]), labels[start : start + batch_size]
            )
            right += hits
        return {"accuracy": 100.0 * right / max(len(labels), 1)}
