"""What every zero-cost proxy is given, and the parts of a network they share.

A proxy scores a network from one minibatch without training it. It receives its own copy
of the network (it may change weights, precision or modules freely), in training mode, with
torch's random state seeded, so a score depends only on the network, the batch and the seed.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from hwnas.errors import HwnasError
from hwnas.tasks.base import Task

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

WEIGHTED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
"""The layers whose weights the gradient proxies sum over, as NAS-Bench-Suite-Zero does."""
ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.GELU, nn.SiLU, nn.Hardswish, nn.LeakyReLU)


@dataclass(frozen=True)
class ProxyBatch:
    """One minibatch of the task: ``inputs`` as the network takes them (images, or token
    ids), ``targets`` and the task's ``loss`` on the network's outputs. Data-independent
    proxies read only the inputs' shape and dtype."""

    inputs: torch.Tensor
    targets: torch.Tensor | None
    loss: Loss


def task_batch(task: Task, batch_size: int, seed: int) -> ProxyBatch:
    """The first training minibatch the task draws with ``seed``: the one every arch of a
    run is scored on. A split smaller than ``batch_size`` is refused, not used short."""
    inputs, targets = next(
        iter(task.train_batches(batch_size, torch.Generator().manual_seed(seed)))
    )
    if len(inputs) < batch_size:
        raise HwnasError(f"proxies.batch_size {batch_size}: the training split gives only "
                         f"{len(inputs)} examples a batch")  # fmt: skip
    return ProxyBatch(inputs, targets, task.loss)


def weighted_layers(model: nn.Module) -> list[nn.Module]:
    layers = [m for m in model.modules() if isinstance(m, WEIGHTED)]
    if not layers:
        raise HwnasError(f"{type(model).__name__} has no convolution or linear layer to score")
    return layers


def per_layer_sum(model: nn.Module, term: Callable[[nn.Module], torch.Tensor]) -> float:
    """The sum over weighted layers of ``term(layer)`` summed over its elements."""
    with torch.no_grad():
        return float(sum(float(term(layer).sum()) for layer in weighted_layers(model)))


def backward_loss(model: nn.Module, batch: ProxyBatch) -> None:
    """Gradients of the task's loss on the batch, left in each parameter's ``grad``."""
    model.zero_grad()
    batch.loss(model(batch.inputs), batch.targets).backward()


def weight_grad(layer: nn.Module) -> torch.Tensor:
    """The layer's weight gradient; zero for a layer the output does not depend on."""
    grad = layer.weight.grad
    return torch.zeros_like(layer.weight) if grad is None else grad


def at_init(model: nn.Module, seed: int) -> nn.Module:
    """A copy of ``model`` with every module's parameters drawn afresh by its own
    ``reset_parameters``, from ``seed``: the untrained network zero-cost proxies are
    defined on, for any module. Parameters held by a module without ``reset_parameters``
    (a learned position embedding, a custom norm's gain) keep their values; a family's
    sub-network is best drawn afresh by the family itself, as the proxy evaluator does."""
    fresh = copy.deepcopy(model)
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        for module in fresh.modules():
            reset = getattr(module, "reset_parameters", None)
            if callable(reset):
                reset()
    return fresh


def first_embedding(model: nn.Module) -> nn.Embedding | None:
    return next((m for m in model.modules() if isinstance(m, nn.Embedding)), None)


class FeatureInput:
    """The network's input as a float tensor one can perturb and differentiate: the input
    itself for images, the first embedding's output for token ids (which have neither a
    gradient nor a Gaussian version). ``run(features)`` runs the network from it."""

    def __init__(self, model: nn.Module, inputs: torch.Tensor) -> None:
        self.model, self.inputs = model, inputs
        self.embedding = None if inputs.is_floating_point() else first_embedding(model)
        if not inputs.is_floating_point() and self.embedding is None:
            raise HwnasError(f"{type(model).__name__} takes integer inputs but has no "
                             "nn.Embedding to take their features from")  # fmt: skip

    def features(self) -> torch.Tensor:
        if self.embedding is None:
            return self.inputs
        with torch.no_grad():
            return self.embedding(self.inputs)

    def run(self, features: torch.Tensor) -> torch.Tensor:
        if self.embedding is None:
            return self.model(features)
        handle = self.embedding.register_forward_hook(lambda module, args, output: features)
        try:
            return self.model(self.inputs)
        finally:
            handle.remove()


@contextmanager
def forward_hooks(modules: list[nn.Module], hook: Callable) -> Iterator[None]:
    handles = [m.register_forward_hook(hook) for m in modules]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def without_batchnorm(model: nn.Module) -> nn.Module:
    """``model`` with every batch norm replaced by the identity (in place), as synflow is
    defined: a data-free score must not divide by statistics of its all-ones input."""
    for name, child in model.named_children():
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            setattr(model, name, nn.Identity())
        else:
            without_batchnorm(child)
    return model
