"""Super-network training: the sandwich rule with in-place distillation, optionally OFA's
progressive shrinking, for any family on any task.

Each step trains the teacher (the family's largest sub-network) on the labels, then the
smallest and a few random ones on the teacher's soft predictions (BigNAS): the extremes
bound the space, and the teacher costs nothing extra. Fine-tuning a super-network made from a
dense model (InstaTune) distils every sub-network, the largest included, from that frozen
dense model instead. Progressive shrinking (Once-for-All)
opens the family's elastic dimensions in the order its ``phases`` declare, sorting weights
by importance before a phase whose narrower sub-networks keep the first channels.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch

from hwnas.config import TrainConfig
from hwnas.errors import HwnasError
from hwnas.families.base import Family, Phase
from hwnas.families.checkpoint import load_checkpoint, save_checkpoint
from hwnas.progress import Progress, SilentProgress
from hwnas.space import Arch
from hwnas.tasks.base import Task


def resolve_settings(train: TrainConfig, family: type[Family], task: type[Task]) -> TrainConfig:
    """``train`` with every unset value taken from the family's ``training_defaults``
    (optimizer, learning rate, weight decay, warm-up, clipping) or the task's label smoothing:
    SGD at 0.05 suits a batch-normed CNN, a transformer wants AdamW at a few 1e-3."""
    given = train.model_dump(exclude_none=True)
    defaults = {**family.training_defaults, "label_smoothing": task.default_label_smoothing}
    return TrainConfig(**{**defaults, **given})


def phase_of(epoch: int, settings: TrainConfig, phases: tuple[Phase, ...]) -> Phase | None:
    """Progressive shrinking's phase in ``epoch`` (epochs split evenly), or None without it."""
    if not settings.progressive:
        return None
    return phases[min(epoch * len(phases) // settings.epochs, len(phases) - 1)]


def make_optimizer(model: torch.nn.Module, settings: TrainConfig) -> torch.optim.Optimizer:
    """SGD with Nesterov momentum, decaying every weight; or AdamW, decaying only matrices
    and kernels (not norms, biases or gains), as transformers are trained."""
    if settings.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=settings.learning_rate, momentum=0.9,
                               nesterov=True, weight_decay=settings.weight_decay)  # fmt: skip
    params = list(model.parameters())
    groups = [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": settings.weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=settings.learning_rate, betas=(0.9, 0.95))


class SandwichTrainer:
    """Trains a family's super-network on a task; ``settings`` must be resolved (no None)."""

    def __init__(
        self,
        model: Family,
        task: Task,
        settings: TrainConfig,
        seed: int = 0,
        identity: dict | None = None,
        teacher: torch.nn.Module | None = None,
    ) -> None:
        """``identity`` describes the training data (and the dense model, in InstaTune); a
        checkpoint made from others is refused by ``restore``. ``teacher``: a frozen model
        whose outputs every sub-network learns from, the largest included; None: the
        largest sub-network, trained on the labels in the same step (in-place)."""
        unset = [k for k, v in settings.model_dump().items() if v is None]
        if unset:
            raise ValueError(f"training settings {unset} are unset: use resolve_settings")
        self.model = model
        self.task = task
        self.settings = settings
        self.seed = seed
        self.identity = identity or {}
        self.device = torch.device(settings.device)
        self.frozen_teacher = teacher.eval().requires_grad_(False) if teacher else None
        self.space = model.space()
        self.teacher, self.smallest = model.teacher_arch(), model.smallest_arch()
        self.phases = tuple(model.phases())
        self.optimizer = make_optimizer(model, settings)
        self.steps_per_epoch = task.steps_per_epoch(settings.batch_size)
        self.epoch = 0
        self.history: list[dict[str, float | str]] = []

    # -- sampling -------------------------------------------------------------------------
    def _restrict(self, arch: Arch, phase: Phase | None) -> Arch:
        """Hold every choice the phase has not opened at the teacher's value."""
        if phase is None:
            return arch
        values = {
            name: (value if name in phase.opens else self.teacher[name])
            for name, value in arch.to_dict().items()
        }
        values.update({n: self.teacher[n] for n in self.space.names if values[n] is None})
        return self.space.make(values)

    def _students(self, rng: np.random.Generator, phase: Phase | None, step: int = 0) -> list[Arch]:
        """The sub-networks trained after the teacher at global ``step``: none while only
        the teacher trains (``teacher_only``, or a phase that opens nothing)."""
        total = self.settings.epochs * self.steps_per_epoch
        if self.settings.dense or step < self.settings.teacher_only * total:
            return []
        if phase is not None and not phase.opens:
            return []
        randoms = [self.space.sample(rng) for _ in range(self.settings.random_subnets)]
        return [self._restrict(a, phase) for a in [self.smallest, *randoms]]

    # -- training -------------------------------------------------------------------------
    def _lr(self, step: int) -> float:
        """Linear warm-up over the first ``warmup`` of all steps, then cosine decay to 0."""
        total = self.settings.epochs * self.steps_per_epoch
        warm = int(self.settings.warmup * total)
        peak = self.settings.learning_rate
        if step < warm:
            return peak * (step + 1) / warm
        return 0.5 * peak * (1 + math.cos(math.pi * (step - warm) / max(total - warm, 1)))

    def _student_loss(
        self, student: torch.Tensor, teacher: torch.Tensor, y: torch.Tensor
    ) -> torch.Tensor:
        settings = self.settings
        weight = settings.distillation
        loss = weight * self.task.distillation_loss(student, teacher, settings.temperature)
        if weight < 1:
            loss = loss + (1 - weight) * self.task.loss(student, y, settings.label_smoothing)
        return loss

    def _loss_of(self, arch: Arch, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The outputs of ``arch`` on ``x`` and the family's auxiliary loss of that forward."""
        self.model.set_active(arch)
        outputs = self.model(x)
        auxiliary = self.model.auxiliary_loss()
        return outputs, (auxiliary if auxiliary is not None else outputs.new_zeros(()))

    def train_epoch(self, progress: Progress) -> dict[str, float | str]:
        settings, epoch = self.settings, self.epoch
        phase = phase_of(epoch, settings, self.phases)
        previous = phase_of(epoch - 1, settings, self.phases) if epoch > 0 else None
        if phase is not None and phase.sort_first and previous != phase:
            self.model.sort_by_importance()
            for state in self.optimizer.state.values():  # moments are in the old order
                state.clear()
        rng = np.random.default_rng([self.seed, epoch])
        generator = torch.Generator().manual_seed(int(rng.integers(2**31)))  # data: on the CPU
        self._move(self.device)
        self.model.train()
        label = f"epoch {epoch + 1}/{settings.epochs}"
        task = progress.task(label, self.steps_per_epoch)
        totals = {"loss": 0.0, "correct": 0.0, "predicted": 0.0, "samples": 0.0}
        started = time.perf_counter()
        batches = self.task.train_batches(settings.batch_size, generator)
        for step, (x, y) in enumerate(batches):
            x, y = x.to(self.device), y.to(self.device)
            for group in self.optimizer.param_groups:
                group["lr"] = self._lr(epoch * self.steps_per_epoch + step)
            self.optimizer.zero_grad(set_to_none=True)
            students = self._students(rng, phase, epoch * self.steps_per_epoch + step)
            if self.frozen_teacher is None:
                teacher, auxiliary = self._loss_of(self.teacher, x)
                loss = self.task.loss(teacher, y, settings.label_smoothing)
                (loss + auxiliary).backward()
                reported = teacher.detach()
            else:
                with torch.no_grad():
                    teacher = self.frozen_teacher(x)
                largest, auxiliary = self._loss_of(self.teacher, x)
                (self._student_loss(largest, teacher, y) + auxiliary).backward()
                reported = largest.detach()  # what is trained, not the frozen model
                loss = self.task.loss(reported, y, settings.label_smoothing)
            for arch in students:
                student, auxiliary = self._loss_of(arch, x)
                (self._student_loss(student, teacher, y) + auxiliary).backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), settings.grad_clip)
            self.optimizer.step()
            right, predicted = self.task.correct(reported, y)
            totals["loss"] += float(loss.detach()) * len(y)
            totals["correct"] += right
            totals["predicted"] += predicted
            totals["samples"] += len(y)
            task.advance(
                1,
                description=f"{label} loss {totals['loss'] / totals['samples']:.3f} "
                f"train acc {100 * totals['correct'] / totals['predicted']:.1f}%",
            )
        task.close()
        seconds = time.perf_counter() - started
        self.epoch += 1
        record = {
            "epoch": self.epoch,
            "phase": phase.name if phase else "sandwich",
            "loss": totals["loss"] / totals["samples"],
            "train_accuracy": 100 * totals["correct"] / totals["predicted"],
            "seconds": seconds,
            "samples_per_second": totals["samples"] / seconds,
        }
        self.history.append(record)
        return record

    # -- checkpoints ----------------------------------------------------------------------
    def save(self, path: Path) -> None:
        meta = {"epoch": self.epoch, "seed": self.seed, "train": self._settings_identity(),
                "data": self.identity, "history": self.history}  # fmt: skip
        save_checkpoint(path, self.model, meta, self.optimizer)

    def _settings_identity(self) -> dict:
        """Settings that change the trained weights (not the thread count or the device, so a
        run trained on a GPU may be resumed on a CPU)."""
        return self.settings.model_dump(mode="json", exclude={"threads", "device"})

    def restore(self, path: Path) -> None:
        meta = load_checkpoint(path, self.model, self.optimizer)
        same = (meta.get("train"), meta.get("seed"), meta.get("data"))
        if same != (self._settings_identity(), self.seed, self.identity):
            raise HwnasError(f"{path}: trained with other settings; start a new run instead")
        self.epoch = int(meta["epoch"])
        self.history = list(meta["history"])

    def fit(self, progress: Progress | None = None, checkpoint: Path | None = None) -> list[dict]:
        """Train the remaining epochs, saving ``checkpoint`` after each; the model (and the
        frozen teacher) end on the CPU, where the search measures and exports them."""
        progress = progress or SilentProgress()
        torch.set_num_threads(self.settings.threads)
        while self.epoch < self.settings.epochs:
            self.train_epoch(progress)
            if checkpoint is not None:
                self.save(checkpoint)
        self._move(torch.device("cpu"))
        return self.history

    def _move(self, device: torch.device) -> None:
        """The super-network and the frozen teacher to ``device``; the optimizer's moments
        follow (their parameters stay the same objects)."""
        for module in (self.model, self.frozen_teacher):
            if module is not None:
                module.to(device)
        for state in self.optimizer.state.values():
            for key, value in state.items():
                if isinstance(value, torch.Tensor) and key != "step":
                    state[key] = value.to(device)
