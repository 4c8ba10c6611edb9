"""FBNet/ProxylessNAS-style search over the elastic MobileNet's per-layer choices: one
categorical distribution per choice (resolution, each stage's depth, each block's kernel and
expand ratio), learned by gradient together with the shared weights, with the device
profile's latency in the loss so the result lands on a latency asked for.

Each step draws one sub-network with hard Gumbel-softmax (straight through, as GDAS and
ProxylessNAS do: the forward pass runs only the drawn sub-network of the weight-shared
super-network, the backward pass reaches every logit through the soft sample). The drawn
choices gate what they decide: the resized image by the resolution's sample, each block's
residual branch (or, without a residual, its output) by its kernel's and expand ratio's, each
stage's output by its depth's. Every gate is 1 in the forward pass.

The latency term is FBNet's: the profile's table sum taken over the sample's weights
(``ExpectedLatency`` of the straight-through one-hots: the drawn sub-network's table latency
forward, the soft sample's gradient backward), scaled by the profile predictor's correction
at the most likely sub-network (refreshed each epoch). The expectation under the
distribution itself would not do: a near-uniform distribution meets any target in the mean
while its most likely sub-network is the smallest. The architecture loss is cross-entropy
plus ``latency_weight * |L/target - 1|`` (TuNAS's absolute form, which pulls toward the
target from either side rather than simply down, as FBNet's multiplicative
``log(latency)`` does), so the samples, and with them the distribution, gather around it.

Training alternates like DARTS (``hwnas.oneshot.search``): even batches step the weights on
the drawn sub-network, odd batches the logits (Adam); the first ``warmup_epochs`` step only
the weights, on sub-networks drawn uniformly, so the logits do not learn from untrained
weights; the temperature falls exponentially from ``temperature`` to ``temperature_min``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from hwnas.config import OneShotConfig
from hwnas.evaluate.quality import recalibrate_batchnorm
from hwnas.families.mobilenet.network import ElasticMobileNet
from hwnas.families.mobilenet.static import pool_and_classify, resize
from hwnas.hardware.profile import Profile
from hwnas.oneshot.search import weight_optimiser, weight_step
from hwnas.progress import Progress, SilentProgress
from hwnas.space import Arch
from hwnas.tasks.base import Task


def _uniform(arch: Mapping[str, Any], kernel: int, expand: int) -> dict[str, int]:
    """Every block's kernel and expand ratio set to ``kernel`` and ``expand``."""
    return {**{n: kernel for n in arch if n.endswith(".kernel")},
            **{n: expand for n in arch if n.endswith(".expand")}}  # fmt: skip


class ExpectedLatency:
    """The profile's table latency of a sub-network drawn from per-choice probabilities, in
    expectation and differentiable in them.

    The table sums one entry per layer, and a block's entry depends only on the input
    resolution and its own kernel and expand ratio, so the expectation is the sum over
    resolutions and block slots of P(resolution) * P(the stage reaches the slot) * the mean
    entry under the block's kernel and expand probabilities; resize, stem and head depend
    on the resolution alone.
    """

    def __init__(self, family: ElasticMobileNet, profile: Profile) -> None:
        table = profile.table
        space, config = family.space(), family.config
        largest = family.teacher_arch().to_dict()
        options = {c.name: c.options for c in space.choices}  # the order probabilities have
        resolutions, kernels, expands = (options[n] for n in ("resolution", "s0.b0.kernel",
                                                              "s0.b0.expand"))  # fmt: skip
        self.overhead_ms = table.overhead_ms
        self.depths = options["s0.depth"]
        self.blocks = [(i, j) for i in range(len(config.widths)) for j in range(config.max_depth)]
        shape = (len(resolutions), len(self.blocks), len(kernels), len(expands))
        fixed = torch.zeros(shape[0], dtype=torch.float64)
        blocks = torch.zeros(shape, dtype=torch.float64)
        slot = {f"s{i}.b{j}": b for b, (i, j) in enumerate(self.blocks)}
        for r, resolution in enumerate(resolutions):
            for k, kernel in enumerate(kernels):
                for e, expand in enumerate(expands):
                    arch = space.make({**largest, **_uniform(largest, kernel, expand),
                                       "resolution": resolution})  # fmt: skip
                    for layer in family.layer_schedule(arch):
                        cost = table.entries[layer.key] - table.overhead_ms
                        if layer.kind == "mbconv":
                            blocks[r, slot[layer.part], k, e] = cost
                        elif k == e == 0:
                            fixed[r] += cost
        self.fixed_ms, self.block_ms = fixed, blocks

    def __call__(self, probabilities: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Expected table latency (ms) under ``probabilities`` (choice name -> probability
        of each option, in the space's order)."""
        p = {n: v.to(torch.float64) for n, v in probabilities.items()}
        per_resolution = self.fixed_ms.clone()
        for b, (i, j) in enumerate(self.blocks):
            depth = p[f"s{i}.depth"]
            reach = sum(depth[d] for d, value in enumerate(self.depths) if value > j)
            mean = torch.einsum("rke,k,e->r", self.block_ms[:, b], p[f"s{i}.b{j}.kernel"],
                                p[f"s{i}.b{j}.expand"])  # fmt: skip
            per_resolution = per_resolution + reach * mean
        return self.overhead_ms + per_resolution @ p["resolution"]


@dataclass
class Sample:
    """One drawn sub-network: the arch and, per choice, its straight-through one-hot
    (``weights``: the hard sample in the forward pass, the soft sample's gradient in the
    backward pass)."""

    arch: Arch
    weights: dict[str, torch.Tensor]

    def gate(self, name: str) -> torch.Tensor:
        """The drawn option's entry of choice ``name``'s one-hot: 1 forward."""
        weights = self.weights[name]
        return weights[int(weights.detach().argmax())]


class FBNetSearch:
    """The distribution over sub-networks and the gated forward pass of a drawn one."""

    def __init__(self, family: ElasticMobileNet) -> None:
        self.family = family
        self.choices = family.space().choices
        self.logits = {c.name: torch.zeros(len(c.options), requires_grad=True)
                       for c in self.choices}  # fmt: skip

    def parameters(self) -> list[torch.Tensor]:
        return list(self.logits.values())

    def probabilities(self) -> dict[str, torch.Tensor]:
        return {name: torch.softmax(v, 0) for name, v in self.logits.items()}

    def most_likely(self) -> Arch:
        return self.family.space().make({c.name: c.options[int(self.logits[c.name].argmax())]
                                         for c in self.choices})  # fmt: skip

    def draw(self, temperature: float, generator: torch.Generator, uniform: bool = False) -> Sample:
        """Hard Gumbel-softmax per choice; ``uniform`` ignores the logits (warm-up)."""
        values, weights = {}, {}
        for c in self.choices:
            logits = torch.zeros(len(c.options)) if uniform else self.logits[c.name]
            noise = torch.rand(len(c.options), generator=generator).clamp_(1e-10, 1 - 1e-10)
            soft = torch.softmax((logits - torch.log(-torch.log(noise))) / temperature, 0)
            index = int(soft.argmax())
            hard = torch.nn.functional.one_hot(torch.tensor(index), len(c.options))
            weights[c.name] = hard - soft.detach() + soft
            values[c.name] = c.options[index]
        return Sample(self.family.set_active(values), weights)

    def forward(self, x: torch.Tensor, sample: Sample) -> torch.Tensor:
        """The drawn sub-network on ``x`` (``set_active`` was called by ``draw``), gated."""
        net, arch, gate = self.family, sample.arch, sample.gate
        x = net.stem(resize(x, int(arch["resolution"])) * gate("resolution"))
        for i, stage in enumerate(net.stages):
            for j, block in enumerate(stage[: int(arch[f"s{i}.depth"])]):
                g = gate(f"s{i}.b{j}.kernel") * gate(f"s{i}.b{j}.expand")
                y = block(x)
                x = x + g * (y - x) if block.residual else g * y
            x = x * gate(f"s{i}.depth")
        return pool_and_classify(net.head(x), net.classifier)


def temperature_at(settings: OneShotConfig, epoch: int) -> float:
    """Exponential decay from ``temperature`` (first epoch) to ``temperature_min`` (last)."""
    fraction = epoch / max(settings.epochs - 1, 1)
    return settings.temperature * (settings.temperature_min / settings.temperature) ** fraction


def train_fbnet(
    search: FBNetSearch,
    task: Task,
    settings: OneShotConfig,
    profile: Profile,
    seed: int,
    progress: Progress | None = None,
) -> list[dict[str, Any]]:
    """Train the shared weights and the logits together, in place; per epoch, the
    weights' loss, the expected latency, the most likely sub-network with its profile
    estimate and the super-network's validation quality on it."""
    family, expected = search.family, ExpectedLatency(search.family, profile)
    target = settings.latency_target_ms
    generator = torch.Generator().manual_seed(seed)
    calibration = task.calibration_inputs(256, seed)
    shared = list(family.parameters())
    weights = weight_optimiser(shared, settings)
    per_epoch = task.steps_per_epoch(settings.batch_size)
    steps = settings.warmup_epochs * per_epoch + (
        settings.epochs - settings.warmup_epochs
    ) * math.ceil(per_epoch / 2)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(weights, max(steps, 1), eta_min=1e-3)
    architecture = torch.optim.Adam(search.parameters(), settings.arch_learning_rate,
                                    betas=(0.5, 0.999),
                                    weight_decay=settings.arch_weight_decay)  # fmt: skip
    history = []
    table_ms, predicted_ms = profile.estimate(family, [search.most_likely()])
    bar = (progress or SilentProgress()).task("fbnet search", settings.epochs)
    for epoch in range(settings.epochs):
        warming = epoch < settings.warmup_epochs
        temperature = temperature_at(settings, epoch)
        correction = float(predicted_ms[0] / table_ms[0])
        family.train()
        losses, latency_losses = [], []
        for step, (inputs, targets) in enumerate(task.train_batches(settings.batch_size,
                                                                    generator)):  # fmt: skip
            sample = search.draw(temperature, generator, uniform=warming)
            if step % 2 and not warming:
                architecture.zero_grad(set_to_none=True)
                latency = correction * expected(sample.weights)
                penalty = settings.latency_weight * torch.abs(latency / target - 1)
                (task.loss(search.forward(inputs, sample), targets) + penalty).backward()
                architecture.step()
                latency_losses.append(float(penalty.detach()))
                continue
            loss = task.loss(search.forward(inputs, sample), targets)
            losses.append(weight_step(weights, shared, loss))
            schedule.step()
        likely = search.most_likely()
        with torch.no_grad():
            expected_ms = correction * float(expected(search.probabilities()))
        table_ms, predicted_ms = profile.estimate(family, [likely])  # also next epoch's
        evaluated = copy.deepcopy(family)  # shared statistics are every draw's; recalibrate
        evaluated.set_active(likely)
        recalibrate_batchnorm(evaluated, calibration)
        history.append({
            "epoch": epoch + 1, "temperature": round(temperature, 4),
            "train_loss": float(np.mean(losses)),
            "latency_loss": float(np.mean(latency_losses)) if latency_losses else None,
            "expected_ms": expected_ms, "most_likely": family.label(likely),
            "most_likely_estimate_ms": float(predicted_ms[0]),
            "val": task.quality(evaluated),
        })  # fmt: skip
        bar.advance()
    bar.close()
    return history


def select_on_target(
    search: FBNetSearch, profile: Profile, target_ms: float, draws: int, tolerance: float,
    seed: int,
) -> tuple[Arch, dict[str, Any]]:  # fmt: skip
    """FBNet's own read-off, by sampling: ``draws`` sub-networks from the learned
    distribution, and of those (with the most likely sub-network) the most probable whose
    profile estimate is within ``tolerance`` of the target, else the one nearest it.

    The most likely sub-network, read off choice by choice, is not where the drawn ones
    gathered around the target: each choice's mode is taken alone, and the latency of the
    combination can land well off it. The distribution's own samples carry the joint
    trade-off the loss taught it, and the profile, made for this, tells which of them meet
    the target before anything is trained or timed."""
    space = search.family.space()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        log_p = {c.name: torch.log_softmax(search.logits[c.name], 0) for c in search.choices}
        drawn = {n: torch.multinomial(v.exp(), draws, replacement=True, generator=generator)
                 for n, v in log_p.items()}  # fmt: skip
    candidates = {}
    indices = [{n: int(v.argmax()) for n, v in log_p.items()}]
    indices += [{n: int(drawn[n][d]) for n in drawn} for d in range(draws)]
    for index in indices:
        arch = space.make({c.name: c.options[index[c.name]] for c in search.choices})
        log_probability = sum(float(log_p[n][i]) for n, i in index.items()
                              if arch[n] is not None)  # inactive blocks' choices: any  # fmt: skip
        candidates.setdefault(arch.key, (arch, log_probability))
    archs, log_probabilities = zip(*candidates.values(), strict=True)
    _, estimates = profile.estimate(search.family, archs)
    errors = np.abs(np.asarray(estimates) / target_ms - 1)
    within = errors <= tolerance
    score = np.where(within, np.asarray(log_probabilities), -np.inf)
    pick = int(np.argmax(score)) if within.any() else int(np.argmin(errors))
    return archs[pick], {
        "draws": draws, "distinct": len(archs), "within_tolerance": int(within.sum()),
        "log_probability": log_probabilities[pick],
    }  # fmt: skip


def choice_probabilities(search: FBNetSearch) -> dict[str, dict[str, float]]:
    """Each choice's distribution at the end, option -> probability, for the summary."""
    with torch.no_grad():
        probabilities = search.probabilities()
    return {c.name: {str(o): round(float(p), 6) for o, p in
                     zip(c.options, probabilities[c.name], strict=True)}
            for c in search.choices}  # fmt: skip
