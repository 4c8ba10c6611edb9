"""What evaluators are made from: a plan (known from the config alone) and a context (the
task and super-network, once built).

Splitting the two lets a run list every metric it will record, and so refuse an objective
that names none of them, before it loads data or trains anything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from torch import nn

from hwnas.families.base import Family
from hwnas.hardware.settings import LatencySettings
from hwnas.space import Arch
from hwnas.tasks.base import Task

if TYPE_CHECKING:
    from hwnas.config import ProxyConfig
    from hwnas.precision import PrecisionPolicy


@dataclass(frozen=True)
class EvaluationPlan:
    """``task``: the task's class (its quality metrics); ``latency_source``: ``measured`` or
    ``profile:FILE``; ``precision``: whether archs carry a precision policy (then quality
    and latency are those of the quantized model, and its file is weighed); ``proxies``:
    the zero-cost proxies recorded."""

    task: type[Task]
    latency_source: str
    precision: bool = False
    proxies: tuple[str, ...] = ()


@dataclass(frozen=True)
class EvaluationContext:
    """``build`` gives an arch's model as it would be deployed, cached by the caller since
    several evaluators look at the same arch in a row: the standalone sub-network with its
    batch-norm statistics re-estimated on calibration inputs (the super-network's shared
    ones fit no sub-network), or in a precision search its quantized ONNX model
    (``hwnas.quantize.OnnxModule``, made by ``policy``); ``family`` is the registry name;
    ``proxies``: which zero-cost proxies to score and how, ``seed`` the run's;
    ``latency_rounds`` and ``recalibrate`` as in the config's ``latency`` section."""

    task: Task
    model: Family
    family: str
    build: Callable[[Arch], nn.Module]
    latency_source: str
    latency: LatencySettings
    policy: PrecisionPolicy | None = None
    proxies: ProxyConfig | None = None
    seed: int = 0
    latency_rounds: int = 3
    recalibrate: bool = False

    @property
    def precision(self) -> bool:
        return self.policy is not None
