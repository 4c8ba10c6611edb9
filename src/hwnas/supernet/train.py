"""Super-network training: the sandwich rule with in-place distillation, optionally OFA's
progressive shrinking.

Each step trains the largest sub-network on the labels, then the smallest and a few random
ones on the largest one's soft predictions (BigNAS): the extremes bound the space, and the
teacher costs nothing extra. Progressive shrinking (Once-for-All) opens the elastic
dimensions one at a time, kernel, then depth, then expand ratio, sorting channels by
importance before narrower blocks start taking the first ones.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from hwnas.errors import HwnasError
from hwnas.progress import Progress, SilentProgress
from hwnas.space import Arch
from hwnas.supernet.checkpoint import load_checkpoint, save_checkpoint

PHASES = ("full", "kernel", "depth", "expand")  # progressive shrinking, in order


@dataclass(frozen=True)
class TrainSettings:
    epochs: int = 12
    batch_size: int = 64
    learning_rate: float = 0.05
    weight_decay: float = 3e-5
    random_subnets: int = 2
    temperature: float = 1.0
    label_smoothing: float = 0.1
    progressive: bool = False
    threads: int = 1


def elastic_kinds(phase: str) -> set[str]:
    """Which choice kinds (the name's last part: kernel, depth, expand) vary in a phase."""
    opened = PHASES[: PHASES.index(phase) + 1]
    return {kind for kind in opened if kind != "full"} | (
        {"resolution"} if phase == "expand" else set()
    )


def phase_of(epoch: int, settings: TrainSettings) -> str | None:
    if not settings.progressive:
        return None
    return PHASES[min(epoch * len(PHASES) // settings.epochs, len(PHASES) - 1)]


class SandwichTrainer:
    """Trains an elastic model (``space()``, ``set_active``, ``largest_arch`` ...) on tensors."""

    def __init__(
        self, model, images, labels, settings: TrainSettings, seed: int = 0, augment=None,
        data: dict | None = None,
    ):  # fmt: skip
        """``data`` describes the training data; a checkpoint made on other data is refused."""
        self.model = model
        self.data = data or {}
        self.images, self.labels = images, labels
        self.settings = settings
        self.seed = seed
        self.augment = augment
        self.space = model.space()
        self.largest, self.smallest = model.largest_arch(), model.smallest_arch()
        self.optimizer = torch.optim.SGD(
            model.parameters(),
            lr=settings.learning_rate,
            momentum=0.9,
            nesterov=True,
            weight_decay=settings.weight_decay,
        )
        self.steps_per_epoch = math.ceil(len(images) / settings.batch_size)
        self.epoch = 0
        self.history: list[dict[str, float]] = []

    # -- sampling -------------------------------------------------------------------------
    def _restrict(self, arch: Arch, phase: str | None) -> Arch:
        """Hold every dimension not yet opened at the largest network's value."""
        if phase is None:
            return arch
        kinds = elastic_kinds(phase)
        values = {
            name: (value if name.rsplit(".", 1)[-1] in kinds else self.largest[name])
            for name, value in arch.to_dict().items()
        }
        values.update({n: self.largest[n] for n in self.space.names if values[n] is None})
        return self.space.make(values)

    def _students(self, rng: np.random.Generator, phase: str | None) -> list[Arch]:
        if phase == "full":  # only the largest network trains in the first phase
            return []
        randoms = [self.space.sample(rng) for _ in range(self.settings.random_subnets)]
        return [self._restrict(a, phase) for a in [self.smallest, *randoms]]

    # -- training -------------------------------------------------------------------------
    def _lr(self, step: int) -> float:
        total = self.settings.epochs * self.steps_per_epoch
        return 0.5 * self.settings.learning_rate * (1 + math.cos(math.pi * step / total))

    def _forward(self, arch: Arch, x: torch.Tensor) -> torch.Tensor:
        self.model.set_active(arch)
        return self.model(x)

    def train_epoch(self, progress: Progress) -> dict[str, float]:
        settings, epoch = self.settings, self.epoch
        phase = phase_of(epoch, settings)
        if phase == "expand" and phase_of(epoch - 1, settings) != "expand":
            self.model.sort_channels()
            for state in self.optimizer.state.values():  # momentum is in the old channel order
                state.pop("momentum_buffer", None)
        rng = np.random.default_rng([self.seed, epoch])
        generator = torch.Generator().manual_seed(int(rng.integers(2**31)))
        order = torch.randperm(len(self.images), generator=generator)
        self.model.train()
        task = progress.task(f"epoch {epoch + 1}/{settings.epochs}", self.steps_per_epoch)
        totals = {"loss": 0.0, "correct": 0.0, "seen": 0.0}
        started = time.perf_counter()
        for step in range(self.steps_per_epoch):
            batch = order[step * settings.batch_size : (step + 1) * settings.batch_size]
            x, y = self.images[batch], self.labels[batch]
            if self.augment is not None:
                x = self.augment(x, generator)
            for group in self.optimizer.param_groups:
                group["lr"] = self._lr(epoch * self.steps_per_epoch + step)
            self.optimizer.zero_grad(set_to_none=True)
            teacher = self._forward(self.largest, x)
            loss = F.cross_entropy(teacher, y, label_smoothing=settings.label_smoothing)
            loss.backward()
            soft = F.softmax(teacher.detach() / settings.temperature, dim=1)
            for arch in self._students(rng, phase):
                student = F.log_softmax(self._forward(arch, x) / settings.temperature, dim=1)
                distill = F.kl_div(student, soft, reduction="batchmean") * settings.temperature**2
                distill.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), 5.0)
            self.optimizer.step()
            totals["loss"] += float(loss.detach()) * len(y)
            totals["correct"] += float((teacher.argmax(1) == y).sum())
            totals["seen"] += len(y)
            mean_loss = totals["loss"] / totals["seen"]
            accuracy = 100 * totals["correct"] / totals["seen"]
            task.advance(
                1,
                description=f"epoch {epoch + 1}/{settings.epochs} "
                f"loss {mean_loss:.3f} train acc {accuracy:.1f}%",
            )
        task.close()
        seconds = time.perf_counter() - started
        self.epoch += 1
        record = {
            "epoch": self.epoch,
            "phase": phase or "sandwich",
            "loss": totals["loss"] / totals["seen"],
            "train_accuracy": 100 * totals["correct"] / totals["seen"],
            "seconds": seconds,
            "images_per_second": totals["seen"] / seconds,
        }
        self.history.append(record)
        return record

    # -- checkpoints ----------------------------------------------------------------------
    def save(self, path: Path) -> None:
        meta = {"epoch": self.epoch, "seed": self.seed, "train": self._identity(),
                "data": self.data, "history": self.history}  # fmt: skip
        save_checkpoint(path, self.model, meta, self.optimizer)

    def _identity(self) -> dict:
        """Settings that change the trained weights (not the thread count)."""
        return {k: v for k, v in asdict(self.settings).items() if k != "threads"}

    def restore(self, path: Path) -> None:
        meta = load_checkpoint(path, self.model, self.optimizer)
        same = (meta.get("train"), meta.get("seed"), meta.get("data"))
        if same != (self._identity(), self.seed, self.data):
            raise HwnasError(f"{path}: trained with other settings; start a new run instead")
        self.epoch = int(meta["epoch"])
        self.history = list(meta["history"])

    def fit(self, progress: Progress | None = None, checkpoint: Path | None = None) -> list[dict]:
        progress = progress or SilentProgress()
        torch.set_num_threads(self.settings.threads)
        while self.epoch < self.settings.epochs:
            self.train_epoch(progress)
            if checkpoint is not None:
                self.save(checkpoint)
        return self.history
