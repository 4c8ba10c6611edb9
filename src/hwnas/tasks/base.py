"""The task contract: what is learned and how it is judged, whatever family learns it.

A family builds its super-network for a task's ``TaskSpec`` (what goes in, what comes out);
the trainer asks the task for batches, the loss and the distillation loss; evaluators ask it
for quality metrics and calibration inputs. A task never sees a super-network, only the
outputs of some ``nn.Module`` it is given, so any family can serve any task whose spec it
accepts.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import nn

from hwnas.metrics import Metric

Split = Literal["train", "val", "test"]


@dataclass(frozen=True)
class InputSpec:
    """What one example fed to a network looks like (the batch dimension excluded).

    ``image``: float32 ``(channels, height, width)``, normalised. ``tokens``: int64 ids of
    shape ``(length,)`` in ``range(vocab_size)``.
    """

    kind: Literal["image", "tokens"]
    shape: tuple[int, ...]
    vocab_size: int | None = None

    @property
    def dtype(self) -> torch.dtype:
        return torch.int64 if self.kind == "tokens" else torch.float32

    def example(self, batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Random valid inputs: what export checks and latency timings feed a network."""
        shape = (batch_size, *self.shape)
        if self.kind == "tokens":
            return torch.randint(0, self.vocab_size, shape, generator=generator)
        return torch.randn(shape, generator=generator)


@dataclass(frozen=True)
class TaskSpec:
    """What a family must know of a task to build a network for it.

    ``outputs``: class logits ``(batch, outputs)`` for classification; for a language model,
    next-token logits at every position, ``(batch, length, outputs)``, each position seeing
    only itself and earlier ones (causal).
    """

    kind: Literal["classification", "language-model"]
    input: InputSpec
    outputs: int

    @property
    def causal(self) -> bool:
        return self.kind == "language-model"


@runtime_checkable
class Task(Protocol):
    """Data, loss and quality metrics of one problem. Hooks, in the order a run calls them:

    - ``expected_spec(options)`` (a classmethod): the ``spec`` that loader ``options`` give,
      as far as they decide it, before any data is read; a config is checked against it.
    - ``spec``: read once, when the family builds its super-network.
    - ``identity()``: stored with checkpoints, so weights trained on other data are refused.
    - ``steps_per_epoch`` and ``train_batches``: once per training epoch; ``train_batches``
      draws everything random (order, augmentation, windows) from the generator it is given,
      so training is deterministic for a seed.
    - ``loss`` on the teacher's outputs, ``distillation_loss`` on every student's: each step.
    - ``calibration_inputs``: once before the search (batch-norm recalibration, quantisation).
    - ``quality``: once per evaluated sub-network on ``val``; on ``test`` for exported ones.
    - ``split_sizes`` and ``preprocessing``: once, for the summary, the report and the
      metadata of exported models (what a deployer must do to feed one);
      ``deployment_files``: once, when models are exported, written beside them.
      It returns exactly the metrics named in ``quality_metrics``, which objectives and
      constraints may name.
    """

    name: str
    spec: TaskSpec
    quality_metrics: ClassVar[tuple[Metric, ...]]
    default_objective: ClassVar[str]  # e.g. "accuracy:max": what a run optimises by default
    default_label_smoothing: ClassVar[float]

    @classmethod
    def expected_spec(cls, options: Mapping[str, Any]) -> TaskSpec: ...

    def identity(self) -> dict[str, Any]: ...

    def steps_per_epoch(self, batch_size: int) -> int: ...

    def train_batches(
        self, batch_size: int, generator: torch.Generator
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...

    def loss(
        self, outputs: torch.Tensor, targets: torch.Tensor, label_smoothing: float = 0.0
    ) -> torch.Tensor: ...

    def distillation_loss(
        self, student: torch.Tensor, teacher: torch.Tensor, temperature: float = 1.0
    ) -> torch.Tensor: ...

    def correct(self, outputs: torch.Tensor, targets: torch.Tensor) -> tuple[int, int]: ...

    def calibration_inputs(self, n: int, seed: int) -> torch.Tensor: ...

    def quality(self, module: nn.Module, split: Split = "val") -> dict[str, float]: ...

    def split_sizes(self) -> dict[str, dict[str, Any]]:
        """Per split: ``size`` and its ``unit`` (images, bytes), and for the splits quality is
        measured on, how much of it that is (``evaluated``), so a reader can judge a gap."""
        ...

    def preprocessing(self) -> dict[str, Any]:
        """How raw data becomes the model's input, as JSON: normalisation, sizes, vocabulary,
        class names; exported models carry it."""
        ...

    def deployment_files(self) -> dict[str, bytes]:
        """Files a deployer needs beside the exported models to feed them (a tokenizer), by
        file name; what ``preprocessing`` describes cannot always be said in JSON."""
        ...


class PredictsLastDim:
    """Loss, distillation and hit counting for tasks whose outputs are logits over the last
    dimension and whose targets are the indices of the right class (a label, or the next
    token at every position): both tasks hwnas has share these."""

    def loss(
        self, outputs: torch.Tensor, targets: torch.Tensor, label_smoothing: float = 0.0
    ) -> torch.Tensor:
        return F.cross_entropy(
            outputs.reshape(-1, outputs.shape[-1]),
            targets.reshape(-1),
            label_smoothing=label_smoothing,
        )

    def distillation_loss(
        self, student: torch.Tensor, teacher: torch.Tensor, temperature: float = 1.0
    ) -> torch.Tensor:
        """KL divergence of the student from the teacher's softened distribution, averaged
        over predictions (each position of a sequence is one), scaled by T^2 (Hinton)."""
        classes = student.shape[-1]
        soft = F.softmax(teacher.detach().reshape(-1, classes) / temperature, dim=1)
        log_student = F.log_softmax(student.reshape(-1, classes) / temperature, dim=1)
        return F.kl_div(log_student, soft, reduction="batchmean") * temperature**2

    def correct(self, outputs: torch.Tensor, targets: torch.Tensor) -> tuple[int, int]:
        """(right predictions, predictions): argmax against the target at each one."""
        return int((outputs.argmax(-1) == targets).sum()), targets.numel()
