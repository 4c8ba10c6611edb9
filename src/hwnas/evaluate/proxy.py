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
from hwnas.proxies import PROXIES, ProxyBatch, score_proxies, task_batch
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
        """``weights: init`` scores sub-networks of a super-network drawn afresh from the
        run's seed by the family itself (so every parameter has its family's initial value,
        as training would start), ``trained`` the run's own."""
        settings = context.proxies
        if settings is None or not settings.names:
            return None
        batch = task_batch(context.task, settings.batch_size, context.seed)
        source = context.model
        if settings.weights == "init":
            with torch.random.fork_rng(devices=[]):
                torch.default_generator.manual_seed(context.seed)
                source = type(source).from_config(source.config.to_dict())
        return cls(settings.names, source.extract, batch, context.seed)

    def evaluate(self, arch: Arch) -> dict[str, float]:
        scores = score_proxies(self.names, self.network(arch), self.batch, self.seed)
        undefined = [name for name, (value, _) in scores.items() if not math.isfinite(value)]
        if undefined:  # e.g. synflow of a cell whose every path to the output is cut
            raise InvalidArch(f"proxy {undefined[0]} is undefined for this arch")
        return {proxy_metric(name): value for name, (value, _) in scores.items()}
