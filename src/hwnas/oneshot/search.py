"""Gradient one-shot search on the NAS-Bench-201 cell space: learn architecture weights with
the network's weights (first-order DARTS; PC-DARTS with its options), then turn them into one
cell.

Training alternates two optimisers over one pass of the training split: even batches step
the weights (SGD with momentum, cosine schedule, gradient clipping at 5), odd batches step
the architecture parameters (Adam), so each sees half the data, as DARTS splits its
training set. First order: the architecture gradient is taken at the current weights, not
through a virtual step.

Two ways to read a cell off the trained network:
- ``argmax``: each edge's largest architecture weight, DARTS's own rule. On NAS-Bench-201 it
  is known to collapse toward skip connections, whose weight grows because they make the
  super-network train fastest, not because the cell they give is good.
- ``perturbation`` ("Rethinking Architecture Selection in Differentiable NAS", Wang et al.
  2021): edge by edge in a random order, each remaining operation is taken out of the
  mixture in turn, and the one whose removal costs the super-network the most validation
  accuracy is kept (ties: the one whose removal moves its predictions most); the edge is fixed
  to it and the weights are tuned briefly before the next edge. ``none`` is never kept where
  it would cut the last input->output path.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import torch

from hwnas.config import OneShotConfig
from hwnas.families.nb201.cell import EDGE_NAMES, OPERATIONS, keeps_a_path
from hwnas.oneshot.network import OneShotNB201
from hwnas.progress import Progress, SilentProgress
from hwnas.tasks.base import Task

SELECTIONS = ("argmax", "perturbation")


def operation_table(network: OneShotNB201) -> dict[str, dict[str, float]]:
    weights = network.operation_weights().detach()
    return {edge: {op: round(float(w), 6) for op, w in zip(OPERATIONS, row, strict=True)}
            for edge, row in zip(EDGE_NAMES, weights, strict=True)}  # fmt: skip


def weight_optimiser(
    parameters: list[torch.Tensor], settings: OneShotConfig
) -> torch.optim.Optimizer:
    """SGD with momentum for a one-shot search's shared weights (and the retrained result)."""
    return torch.optim.SGD(
        parameters, settings.learning_rate, momentum=settings.momentum,
        weight_decay=settings.weight_decay,
    )  # fmt: skip


def weight_step(optimiser: torch.optim.Optimizer, parameters: list[torch.Tensor],
                loss: torch.Tensor) -> float:  # fmt: skip
    """One step of the shared weights on ``loss``, gradients clipped at norm 5 as DARTS does."""
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(parameters, 5.0)
    optimiser.step()
    return loss.item()


def train_architecture(
    network: OneShotNB201,
    task: Task,
    settings: OneShotConfig,
    seed: int,
    progress: Progress | None = None,
) -> list[dict[str, Any]]:
    """Train ``network``'s weights and architecture parameters together, in place; per
    epoch, the weights' training loss, the super-network's validation accuracy and each
    edge's operation weights (the softmax of its alphas)."""
    generator = torch.Generator().manual_seed(seed)
    shared = network.weights()
    weights = weight_optimiser(shared, settings)
    steps = settings.epochs * math.ceil(task.steps_per_epoch(settings.batch_size) / 2)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(weights, max(steps, 1), eta_min=1e-3)
    architecture = torch.optim.Adam(network.architecture_parameters(),
                                    settings.arch_learning_rate, betas=(0.5, 0.999),
                                    weight_decay=settings.arch_weight_decay)  # fmt: skip
    history = []
    bar = (progress or SilentProgress()).task("one-shot search", settings.epochs)
    for epoch in range(settings.epochs):
        network.train()
        losses = []
        for step, (inputs, targets) in enumerate(task.train_batches(settings.batch_size,
                                                                    generator)):  # fmt: skip
            if step % 2:
                architecture.zero_grad(set_to_none=True)
                task.loss(network(inputs), targets).backward()
                architecture.step()
            else:
                loss = task.loss(network(inputs), targets)
                losses.append(weight_step(weights, shared, loss))
                schedule.step()
        history.append({
            "epoch": epoch + 1, "train_loss": float(np.mean(losses)),
            "val_accuracy": task.quality(network)["accuracy"],
            "operation_weights": operation_table(network),
        })  # fmt: skip
        bar.advance()
    bar.close()
    return history


def select_argmax(network: OneShotNB201) -> dict[str, str]:
    weights = network.operation_weights().detach()
    return {edge: OPERATIONS[int(row.argmax())] for edge, row in zip(EDGE_NAMES, weights,
                                                                      strict=True)}  # fmt: skip


PROBE_INPUTS = 256
"""Inputs of the task's calibration split on which perturbation selection measures how far
taking an operation out moves the super-network's predictions."""


@torch.no_grad()
def _log_predictions(network: OneShotNB201, inputs: torch.Tensor) -> torch.Tensor:
    network.eval()
    return torch.log_softmax(network(inputs), dim=-1)


def select_perturbation(
    network: OneShotNB201,
    task: Task,
    settings: OneShotConfig,
    seed: int,
    progress: Progress | None = None,
) -> tuple[dict[str, str], dict[str, dict[str, dict[str, float]]]]:
    """The cell perturbation-based selection keeps, and per edge and operation what taking
    that operation out cost the super-network: validation accuracy (``accuracy``, the
    paper's criterion) and how far its outputs moved on a fixed probe batch (``output_shift``,
    the mean KL divergence from the full mixture's predictions). Works on a copy.

    Accuracy moves in steps of one validation example, and a super-network that fits its
    task well loses none when most single operations go (digits' 270 validation images; a
    9-cell search kept five ``none`` edges when ties went to the first operation, 10% in
    NAS-Bench-201). Ties are told apart by the output shift, which does not tie: the
    operation the network leans on most moves its predictions most when taken out; then by
    architecture weight. Judging one edge at a time can also cut every path to the output:
    ``none`` is only a candidate while the edges not yet fixed to it still leave a path, so
    the cell kept always has one."""
    network = copy.deepcopy(network)
    mask = torch.ones(len(EDGE_NAMES), len(OPERATIONS))
    network.mask = mask
    alphas = network.alphas.detach()
    order = np.random.default_rng(seed).permutation(len(EDGE_NAMES))
    generator = torch.Generator().manual_seed(seed)
    shared = network.weights()
    optimiser = weight_optimiser(shared, settings)
    probe = task.calibration_inputs(PROBE_INPUTS, seed)
    chosen, drops, dead = {}, {}, set()
    bar = (progress or SilentProgress()).task("perturbation selection", len(order))
    for e in order:
        base, predictions = task.quality(network)["accuracy"], _log_predictions(network, probe)
        lost = {}
        for o, op in enumerate(OPERATIONS):
            mask[e, o] = 0.0
            shift = predictions.exp() * (predictions - _log_predictions(network, probe))
            lost[op] = {"accuracy": base - task.quality(network)["accuracy"],
                        "output_shift": max(float(shift.sum(-1).mean()), 0.0)}  # fmt: skip
            mask[e, o] = 1.0
        cuts = not keeps_a_path(dead | {int(e)})
        candidates = [op for op in OPERATIONS if not (cuts and op == "none")]
        keep = max(candidates, key=lambda op: (lost[op]["accuracy"], lost[op]["output_shift"],
                                               float(alphas[e, OPERATIONS.index(op)])))  # fmt: skip
        if keep == "none":
            dead.add(int(e))
        mask[e] = 0.0
        mask[e, OPERATIONS.index(keep)] = 1.0
        chosen[EDGE_NAMES[e]], drops[EDGE_NAMES[e]] = keep, lost
        network.train()
        batches = task.train_batches(settings.batch_size, generator)
        for _ in range(settings.tune_steps):
            inputs, targets = next(batches, (None, None))
            if inputs is None:
                batches = task.train_batches(settings.batch_size, generator)
                inputs, targets = next(batches)
            weight_step(optimiser, shared, task.loss(network(inputs), targets))
        bar.advance()
    bar.close()
    return {edge: chosen[edge] for edge in EDGE_NAMES}, drops
