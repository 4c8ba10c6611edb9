"""The elastic transformer's shape: its config, the layers an arch runs, and its space.

Cost, memory and latency-table code all walk ``arch_layers``, so they cannot disagree about
what an arch runs. Nothing here needs torch.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any, Literal, NamedTuple

from pydantic import Field, field_validator, model_validator

from hwnas.errors import KeyedError
from hwnas.families.settings import FamilyConfig
from hwnas.space import Space, Value, categorical, ordinal

ATTENTIONS = ("softmax", "sigmoid", "linear")
FEED_FORWARDS = ("mlp", "glu", "moe")
TASK_KEYS = ("input", "vocab_size", "context", "in_channels", "image_size", "outputs")
MAX_OPTIONS = 64
MAX_PARAMETERS = 2**28
"""256 Mi weights (1 GiB at fp32, ~4 GiB with gradients and optimizer state); with every
size below its own bound a network could still ask for terabytes (4096 layers of width
4096), so the whole is bounded too. The default holds ~1.2 Mi."""


class TransformerConfig(FamilyConfig):
    """Shape of the super-network; the default trains on one CPU thread in minutes.

    Set by the task (``for_task``): ``input`` (``tokens`` or ``image``), ``outputs``,
    ``vocab_size`` and ``context`` for tokens (causal, next-token logits at every position),
    ``in_channels`` and ``image_size`` for images (cut into ``patch_size`` patches plus a class
    token, class logits).

    The search space: ``depths``, ``widths`` (the residual stream, shared by all layers) and
    per layer ``heads`` (of ``head_dim`` each), ``mlp_ratios`` (feed-forward neurons per
    width channel), ``attentions`` and ``feed_forwards``, and ``moe_top_k`` for the
    mixture-of-experts layers. The teacher runs the first attention and feed-forward kind
    listed (softmax and MLP by default) at every largest size.

    ``max_context`` is the longest token context the position table holds. A mixture of
    experts splits the feed-forward neurons into ``experts`` groups; each takes at most
    ``capacity_factor`` x its fair share of a batch's tokens, and ``balance_weight`` scales
    its load-balancing loss. Causal linear attention runs in chunks of ``linear_chunk``.
    """

    label = "transformer"

    input: Literal["tokens", "image"] = "tokens"
    outputs: int = Field(256, ge=2, le=1_000_000)
    vocab_size: int | None = Field(256, ge=2, le=1_000_000)
    context: int | None = Field(128, ge=1, le=65_536)
    in_channels: int | None = Field(None, ge=1, le=64)
    image_size: int | None = Field(None, ge=1, le=1024)
    patch_size: int = Field(4, ge=1, le=64)
    max_context: int = Field(512, ge=1, le=65_536)
    depths: tuple[int, ...] = (1, 2, 3, 4)
    widths: tuple[int, ...] = (64, 96, 128)
    heads: tuple[int, ...] = (1, 2, 4)
    head_dim: int = Field(32, ge=1, le=1024)
    mlp_ratios: tuple[int, ...] = (1, 2, 4)
    attentions: tuple[str, ...] = ATTENTIONS
    feed_forwards: tuple[str, ...] = FEED_FORWARDS
    moe_top_k: tuple[int, ...] = (1, 2)
    experts: int = Field(4, ge=2, le=64)
    capacity_factor: float = Field(1.25, gt=0, le=64)
    balance_weight: float = Field(0.01, ge=0, le=100)
    linear_chunk: int = Field(32, ge=1, le=4096)

    @field_validator(
        "depths", "widths", "heads", "mlp_ratios", "moe_top_k", "attentions", "feed_forwards",
        mode="before",
    )  # fmt: skip
    @classmethod
    def _lists_are_options(cls, values: Any) -> Any:
        """JSON and YAML spell options as lists; types stay strict (no ``"64"`` for 64)."""
        return tuple(values) if isinstance(values, list) else values

    @field_validator("depths", "widths", "heads", "mlp_ratios", "moe_top_k")
    @classmethod
    def _increasing(cls, values: tuple[int, ...]) -> tuple[int, ...]:
        if len(values) > MAX_OPTIONS:
            raise ValueError(f"at most {MAX_OPTIONS} options, got {len(values)}")
        if not values or min(values) < 1 or list(values) != sorted(set(values)):
            raise ValueError(f"options must be strictly increasing positive ints, got {values}")
        if max(values) > 4096:
            raise ValueError(f"options must be at most 4096, got {max(values)}")
        return values

    @field_validator("attentions", "feed_forwards")
    @classmethod
    def _known_operators(cls, values: tuple[str, ...], info) -> tuple[str, ...]:
        known = ATTENTIONS if info.field_name == "attentions" else FEED_FORWARDS
        unknown = [v for v in values if v not in known]
        if unknown:
            raise ValueError(f"unknown operator {unknown[0]!r}; known: {', '.join(known)}")
        if not values or len(set(values)) != len(values):
            raise ValueError(f"needs distinct operators, got {list(values)}")
        return values

    @model_validator(mode="after")
    def _consistent(self) -> TransformerConfig:
        if self.input == "tokens":
            if self.vocab_size is None or self.context is None:
                raise ValueError("token input needs vocab_size and context")
            if self.context > self.max_context:
                raise ValueError(
                    f"context {self.context} is longer than the transformer allows "
                    f"(max_context {self.max_context})"
                )
        else:
            if self.in_channels is None or self.image_size is None:
                raise ValueError("image input needs in_channels and image_size")
            if self.image_size % self.patch_size:
                raise ValueError(
                    f"image_size {self.image_size} is not a multiple of patch_size "
                    f"{self.patch_size}"
                )
        if "moe" in self.feed_forwards:
            if max(self.moe_top_k) > self.experts:
                raise ValueError(f"moe_top_k {max(self.moe_top_k)} exceeds experts {self.experts}")
            for width in self.widths:
                for ratio in self.mlp_ratios:
                    if width * ratio % self.experts:
                        raise ValueError(
                            f"width {width} x mlp_ratio {ratio} neurons do not split into "
                            f"{self.experts} experts"
                        )
        if self.parameter_count() > MAX_PARAMETERS:
            raise ValueError(
                f"the super-network would hold {self.parameter_count():,} weights, more than "
                f"the {MAX_PARAMETERS:,} allowed (narrower, shallower, fewer heads)"
            )
        return self

    def parameter_count(self) -> int:
        """Weights of the whole super-network, every layer at its largest: what building it
        allocates (``ElasticTransformer``'s embeddings, layers, norms and head)."""
        width, inner = max(self.widths), max(self.heads) * self.head_dim
        hidden = width * max(self.mlp_ratios)
        layer = 4 * inner * width + 2 * hidden * width + 4 * width
        layer += hidden * width * ("glu" in self.feed_forwards)
        layer += self.experts * width * ("moe" in self.feed_forwards)
        if self.input == "tokens":
            embed = (self.vocab_size or 0) * width
        else:
            embed = width * ((self.in_channels or 0) * self.patch_size**2 + 2)
            embed += (width + 1) * self.outputs
        return embed + self.positions * width + self.max_depth * layer + 2 * width

    @property
    def causal(self) -> bool:
        return self.input == "tokens"

    @property
    def sequence(self) -> int:
        """Positions a layer sees: the token context, or the patches plus the class token."""
        if self.input == "tokens":
            return self.context
        return (self.image_size // self.patch_size) ** 2 + 1

    @property
    def positions(self) -> int:
        """Rows of the position table: ``max_context`` for tokens, one per position for images."""
        return self.max_context if self.input == "tokens" else self.sequence

    @property
    def max_depth(self) -> int:
        return max(self.depths)

    @classmethod
    def for_spec(cls, overrides: Mapping[str, Any] | None, spec: Any) -> TransformerConfig:
        """The default config updated by ``overrides``, with what the task's ``TaskSpec``
        decides set: what ``ElasticTransformer.for_task`` builds, checked without building
        it (a run config is checked before any data loads)."""
        overrides = dict(overrides or {})
        for key in TASK_KEYS:
            if key in overrides:
                raise KeyedError(key, "is set by the dataset, not by overrides")
        shape = spec.input.shape
        if spec.input.kind == "tokens":
            task = {"input": "tokens", "vocab_size": spec.input.vocab_size, "context": shape[0],
                    "in_channels": None, "image_size": None}  # fmt: skip
        else:
            task = {"input": "image", "vocab_size": None, "context": None,
                    "in_channels": shape[0], "image_size": shape[-1]}  # fmt: skip
        return cls.from_dict({**overrides, **task, "outputs": spec.outputs})


class ArchLayer(NamedTuple):
    """What one layer of an arch runs."""

    index: int
    heads: int
    hidden: int  # feed-forward neurons: width x mlp_ratio
    attention: str
    feed_forward: str
    top_k: int  # experts per token (0 unless a mixture of experts)


def arch_width(arch: Mapping[str, Value | None]) -> int:
    return int(arch["width"])


def arch_layers(arch: Mapping[str, Value | None], config: TransformerConfig) -> Iterator[ArchLayer]:
    """The layers ``arch`` runs, in order: the one walk cost, memory and tables build on."""
    width = arch_width(arch)
    for i in range(int(arch["depth"])):
        p = f"l{i}."
        ffn = str(arch[p + "ffn"])
        yield ArchLayer(
            i,
            int(arch[p + "heads"]),
            width * int(arch[p + "mlp_ratio"]),
            str(arch[p + "attention"]),
            ffn,
            int(arch[p + "moe_k"]) if ffn == "moe" else 0,
        )


def capacity(tokens: int, top_k: int, config: TransformerConfig) -> int:
    """Tokens one expert takes from a sequence of ``tokens``: ``capacity_factor`` x its share."""
    return min(tokens, math.ceil(config.capacity_factor * top_k * tokens / config.experts))


def build_space(config: TransformerConfig) -> Space:
    """``depth``, ``width``, then per layer ``l{i}.heads``, ``l{i}.mlp_ratio``,
    ``l{i}.attention``, ``l{i}.ffn`` and ``l{i}.moe_k`` (only for a mixture of experts).

    Layer i's choices exist only when the network is deeper than i, so archs that differ only
    in layers a shallow one skips canonicalise to the same key.
    """
    choices = [ordinal("depth", config.depths), ordinal("width", config.widths)]
    for i in range(config.max_depth):
        deeper = [d for d in config.depths if d > i]
        cond: dict[str, Any] = {} if i < min(config.depths) else {"when": "depth", "in_": deeper}
        p = f"l{i}."
        choices += [
            ordinal(p + "heads", config.heads, **cond),
            ordinal(p + "mlp_ratio", config.mlp_ratios, **cond),
            categorical(p + "attention", config.attentions, **cond),
            categorical(p + "ffn", config.feed_forwards, **cond),
        ]
        if "moe" in config.feed_forwards:
            choices.append(ordinal(p + "moe_k", config.moe_top_k, when=p + "ffn", in_=["moe"]))
    return Space(choices, name="transformer")
