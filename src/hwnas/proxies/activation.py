"""Proxies read from activations: how differently the network treats the inputs of one
batch (jacov, nwot), and how much its output moves under a small Gaussian perturbation
(zen)."""

from __future__ import annotations

import math

import torch
from torch import nn

from hwnas.proxies.base import ACTIVATIONS, WEIGHTED, FeatureInput, ProxyBatch, forward_hooks

JACOV_K = 1e-5


def jacov(model: nn.Module, batch: ProxyBatch) -> float:
    """Jacobian covariance (Mellor et al., 2020): from the correlations between examples of
    d(sum of outputs)/d(input), -sum(log(e + k) + 1/(e + k)) over its eigenvalues e. An
    example whose gradient is constant is taken as fully correlated with every other (the
    limit a vanishing spread tends to), so networks that ignore their input score lowest
    instead of NaN."""
    feed = FeatureInput(model, batch.inputs)
    x = feed.features().detach().requires_grad_()
    out = feed.run(x.clone())  # a first in-place op may not write into the leaf
    out.backward(torch.ones_like(out))
    grad = torch.zeros_like(x) if x.grad is None else x.grad
    correlation = torch.corrcoef(grad.reshape(len(x), -1).double()).nan_to_num(nan=1.0)
    eigenvalues = torch.linalg.eigvalsh(correlation).clamp(min=0)
    return float(-(torch.log(eigenvalues + JACOV_K) + 1 / (eigenvalues + JACOV_K)).sum())


def nwot(model: nn.Module, batch: ProxyBatch) -> float:
    """NASWOT (Mellor et al., 2021): each example's binary code is the sign pattern of
    every activation function's input; the score is log|K| for K the examples' code
    agreements (Hamming kernel). A network that calls its activations as functions, with no
    activation module to hook, is coded by its linear and convolution layers' outputs."""
    size = len(batch.inputs)
    kernel = torch.zeros(size, size, dtype=torch.float64)
    activations = [m for m in model.modules() if isinstance(m, ACTIVATIONS)]
    coded = activations or [m for m in model.modules() if isinstance(m, WEIGHTED)]

    def code(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        source = args[0] if activations else output
        bits = (source.detach().reshape(size, -1) > 0).double()
        kernel.add_(bits @ bits.T + (1 - bits) @ (1 - bits).T)

    with forward_hooks(coded, code), torch.no_grad():
        model(batch.inputs)
    sign, logdet = torch.linalg.slogdet(kernel)
    return float(logdet) if sign > 0 else -math.inf


def zen(model: nn.Module, batch: ProxyBatch, mixup: float = 1e-2) -> float:
    """Zen-score (Lin et al., 2021), data-free: weights drawn from N(0, 1), the mean change
    of the output under a Gaussian input perturbed by ``mixup`` times Gaussian noise, in
    log, plus the log of every batch norm's mean standard deviation. Zen-NAS reads the
    feature map before global pooling; on an arbitrary module the output is read instead."""
    model = model.double()
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, WEIGHTED):
                nn.init.normal_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        for norm in norms:
            norm.momentum = 1.0  # running_var becomes the last batch's variance
            if norm.affine:
                nn.init.ones_(norm.weight)
                nn.init.zeros_(norm.bias)
        feed = FeatureInput(model, batch.inputs)
        x = torch.randn_like(feed.features().double())
        change = feed.run(x) - feed.run(x + mixup * torch.randn_like(x))
        gap = float(change.abs().reshape(len(x), -1).sum(1).mean())
        variances = [float(n.running_var.mean()) for n in norms if n.running_var is not None]
        scale = sum(0.5 * math.log(v) for v in variances if v > 0)  # 0: a dead branch
    return math.log(gap) + scale if gap > 0 else -math.inf
