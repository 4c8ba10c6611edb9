"""Zero-cost proxies: scores of an untrained network from one minibatch, which rank
architectures at a tiny fraction of a training run's cost.

Each entry of ``PROXIES`` is one function of a network and a ``ProxyBatch``; larger is
better for every one (a larger network, more gradient flow, more distinct activation
patterns). ``score_proxies`` gives each its own copy of the network, in training mode (batch
norm on batch statistics, as the proxies were defined), with torch seeded, so scores are
deterministic. A new proxy is one function plus one line here.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from hwnas.errors import HwnasError
from hwnas.proxies import activation, counting, gradient
from hwnas.proxies.base import FeatureInput, ProxyBatch, at_init, task_batch


@dataclass(frozen=True)
class Proxy:
    """``uses_data``: whether the score reads the batch's values and targets, or only the
    shape of its inputs."""

    score: Callable[[nn.Module, ProxyBatch], float]
    description: str
    uses_data: bool
    min_examples: int = 1
    """Examples the score needs: two for those that compare the examples of the batch."""


PROXIES: dict[str, Proxy] = {
    "synflow": Proxy(gradient.synflow, "log synaptic flow, data-free", False),
    "snip": Proxy(gradient.snip, "connection sensitivity |w dL/dw|", True),
    "grasp": Proxy(gradient.grasp, "gradient signal preservation -w H g", True),
    "fisher": Proxy(gradient.fisher, "Fisher information of layer outputs", True),
    "grad_norm": Proxy(gradient.grad_norm, "sum of weight-gradient norms", True),
    "plain": Proxy(gradient.plain, "sum of w dL/dw", True),
    "jacov": Proxy(activation.jacov, "Jacobian covariance across the batch", True, 2),
    "nwot": Proxy(activation.nwot, "log-det of activation-pattern agreements", True, 2),
    "zen": Proxy(activation.zen, "log Zen-score, data-free", False),
    "l2_norm": Proxy(counting.l2_norm, "sum of weight norms", False),
    "params": Proxy(counting.params, "parameters", False),
    "flops": Proxy(counting.flops, "floating-point operations of one example", False),
}


def check_proxy_names(names: Sequence[str]) -> None:
    """One line naming the first unknown proxy and the known ones."""
    for name in names:
        if name not in PROXIES:
            raise HwnasError(f"unknown proxy {name!r}; known: {', '.join(PROXIES)}")


def _score_one(name: str, model: nn.Module, batch: ProxyBatch, seed: int) -> float:
    network = copy.deepcopy(model).train()
    own = ProxyBatch(batch.inputs.clone(), batch.targets, batch.loss)  # in-place first ops
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        return PROXIES[name].score(network, own)


def score_proxies(
    names: Sequence[str], model: nn.Module, batch: ProxyBatch, seed: int = 0
) -> dict[str, tuple[float, float]]:
    """Each proxy of ``names`` as (score, seconds it took); ``model`` and ``batch`` are left
    untouched."""
    check_proxy_names(names)
    for name in names:
        if len(batch.inputs) < PROXIES[name].min_examples:
            raise HwnasError(f"proxy {name} compares examples: it needs a batch of at least "
                             f"{PROXIES[name].min_examples}, got {len(batch.inputs)}")  # fmt: skip
    FeatureInput(model, batch.inputs)  # refuses integer inputs with no embedding to read
    scores = {}
    for name in names:
        start = time.perf_counter()
        value = _score_one(name, model, batch, seed)
        scores[name] = (value, time.perf_counter() - start)
    return scores


__all__ = [
    "PROXIES", "Proxy", "ProxyBatch", "at_init", "check_proxy_names", "score_proxies", "task_batch",
]  # fmt: skip
