"""Proxies read from gradients: of the task's loss on the batch (grad_norm, snip, plain,
grasp, fisher), or of a data-free output (synflow). Sums run over convolution and linear
weights (``WEIGHTED``), as in NAS-Bench-Suite-Zero."""

from __future__ import annotations

import math

import torch
from torch import nn

from hwnas.proxies.base import (
    ProxyBatch,
    backward_loss,
    forward_hooks,
    per_layer_sum,
    weight_grad,
    weighted_layers,
    without_batchnorm,
)


def grad_norm(model: nn.Module, batch: ProxyBatch) -> float:
    """Sum of each layer's weight-gradient norm."""
    backward_loss(model, batch)
    return per_layer_sum(model, lambda layer: weight_grad(layer).norm())


def snip(model: nn.Module, batch: ProxyBatch) -> float:
    """Connection sensitivity (Lee et al.): sum of |w * dL/dw|."""
    backward_loss(model, batch)
    return per_layer_sum(model, lambda layer: (layer.weight * weight_grad(layer)).abs())


def plain(model: nn.Module, batch: ProxyBatch) -> float:
    """Sum of w * dL/dw, sign kept: the loss's first-order change if weights were scaled."""
    backward_loss(model, batch)
    return per_layer_sum(model, lambda layer: layer.weight * weight_grad(layer))


def grasp(model: nn.Module, batch: ProxyBatch) -> float:
    """Gradient signal preservation (Wang et al.): sum of -w * (H g), with g the loss's
    gradient and H its Hessian. H g is a central difference of gradients along g, in
    float64, rather than a second backward pass: some operators (hard sigmoid, hard swish)
    have no second derivative in torch, and a step of 1e-5 of the weights' norm is exact
    to about 1e-9 relative in float64."""
    model = model.double()
    inputs = batch.inputs.double() if batch.inputs.is_floating_point() else batch.inputs
    weights = [layer.weight for layer in weighted_layers(model)]

    def gradient() -> list[torch.Tensor]:
        loss = batch.loss(model(inputs), batch.targets)
        grads = torch.autograd.grad(loss, weights, allow_unused=True)
        return [
            torch.zeros_like(w) if g is None else g for w, g in zip(weights, grads, strict=True)
        ]

    g = gradient()
    g_norm = math.sqrt(sum(float((x**2).sum()) for x in g))
    if g_norm == 0:
        return 0.0
    w_norm = math.sqrt(sum(float((w.detach() ** 2).sum()) for w in weights))
    step = 1e-5 * max(w_norm, 1.0) / g_norm

    def shifted(sign: float) -> list[torch.Tensor]:
        with torch.no_grad():
            for w, x in zip(weights, g, strict=True):
                w.add_(sign * step * x)
        try:
            return gradient()
        finally:
            with torch.no_grad():
                for w, x in zip(weights, g, strict=True):
                    w.sub_(sign * step * x)

    ahead, behind = shifted(1.0), shifted(-1.0)
    with torch.no_grad():
        return float(sum(float((-w * (a - b) / (2 * step)).sum())
                         for w, a, b in zip(weights, ahead, behind, strict=True)))  # fmt: skip


def fisher(model: nn.Module, batch: ProxyBatch) -> float:
    """Fisher information of each layer's output channels (Theis et al., Turner et al.):
    per example, the channel's activation times its gradient summed over positions,
    squared, averaged over the batch, halved; summed over channels and layers."""
    terms: list[torch.Tensor] = []

    def keep(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        if not output.requires_grad:
            return
        # channels are dim 1 of a convolution's output, the last of a linear layer's
        dims = (tuple(range(1, output.dim() - 1)) if isinstance(module, nn.Linear)
                else tuple(range(2, output.dim())))  # fmt: skip
        activation = output.detach()

        def on_grad(grad: torch.Tensor) -> None:
            per_channel = (activation * grad).sum(dims) if dims else activation * grad
            terms.append(0.5 * per_channel.pow(2).mean(0).sum())

        output.register_hook(on_grad)

    with forward_hooks(weighted_layers(model), keep):
        backward_loss(model, batch)
    return float(sum(float(t) for t in terms))


def synflow(model: nn.Module, batch: ProxyBatch) -> float:
    """Synaptic flow (Tanaka et al.), data-free: with every weight made positive, batch
    norm removed and an all-ones input, the sum of |w * dR/dw| for R the outputs' sum, in
    float64. Returned as its natural log, since it spans hundreds of orders of magnitude
    across a space (-inf where nothing reaches the output)."""
    model = without_batchnorm(model).double()
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.abs_()
    inputs = torch.ones((1, *batch.inputs.shape[1:]), dtype=batch.inputs.dtype)
    model.zero_grad()
    model(inputs.double() if inputs.is_floating_point() else inputs).sum().backward()
    total = per_layer_sum(model, lambda layer: (layer.weight * weight_grad(layer)).abs())
    return math.log(total) if total > 0 else -math.inf
