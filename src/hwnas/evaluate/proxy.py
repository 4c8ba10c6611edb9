"""Zero-cost proxies of a sub-network (``hwnas.proxies``), recorded as ``proxy_<name>``: an
objective, a constraint or a predictor's feature that costs one minibatch, not training."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from hwnas.evaluate.base import InvalidArch
from hwnas.evaluate.context import EvaluationContext, EvaluationPlan
from hwnas.metrics import Metric
from hwnas.proxies import PROXIES, ProxyBatch, at_init, score_proxies
from hwnas.space import Arch


def proxy_metric(name: str) -> str:
    return f"proxy_{name}"


class ProxyEvaluator:
    """Scores each arch's network (``network(arch)``) on one fixed minibatch, so every arch
    of a run is judged on the same examples."""

    def __init__(
        self, names: Sequence[str], network: Callable[[Arch], nn.Module], batch: ProxyBatch,
        seed: int,
    ) -> None:  # fmt: skip
        self.names, self.network, self.batch, self.seed = tuple(names), network, batch, seed
        self.metrics = tuple(proxy_metric(name) for name in self.names)

    @staticmethod
    def describe(plan: EvaluationPlan) -> tuple[Metric, ...]:
        return tuple(Metric(proxy_metric(name), "score", PROXIES[name].description)
                     for name in plan.proxies)  # fmt: skip

    @classmethod
    def create(cls, context: EvaluationContext) -> ProxyEvaluator | None:
        settings = context.proxies
        if settings is None or not settings.names:
            return None
        generator = torch.Generator().manual_seed(context.seed)
        inputs, targets = next(iter(context.task.train_batches(settings.batch_size, generator)))
        batch = ProxyBatch(inputs, targets, context.task.loss)
        model, seed = context.model, context.seed

        def network(arch: Arch) -> nn.Module:
            extracted = model.extract(arch)
            return at_init(extracted, seed) if settings.weights == "init" else extracted

        return cls(settings.names, network, batch, seed)

    def evaluate(self, arch: Arch) -> dict[str, float]:
        scores = score_proxies(self.names, self.network(arch), self.batch, self.seed)
        undefined = [name for name, (value, _) in scores.items() if not math.isfinite(value)]
        if undefined:  # e.g. synflow of a cell whose every path to the output is cut
            raise InvalidArch(f"proxy {undefined[0]} is undefined for this arch")
        return {proxy_metric(name): value for name, (value, _) in scores.items()}
