"""The LLaMA-style decoder's shape: its config, the layers an arch runs, and its space.

The dense shape (width, layers, heads, key/value heads, intermediate size) is a LLaMA
``config.json``'s; the elastic options say which smaller shapes the space holds. Cost,
memory and latency-table code all walk ``arch_layers``, so they cannot disagree about what
an arch runs. Nothing here needs torch.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

from pydantic import Field, field_validator, model_validator

from hwnas.errors import KeyedError
from hwnas.families.settings import FamilyConfig
from hwnas.families.transformer.config import MAX_OPTIONS, MAX_PARAMETERS
from hwnas.space import Space, Value, ordinal

TASK_KEYS = ("vocab_size", "context")
RATIOS = (0.25, 0.5, 0.75, 1.0)


class LlamaConfig(FamilyConfig):
    """Shape of the super-network; the default trains on one CPU thread in minutes.

    Set by the task (``for_task``) or by a pretrained folder (``load_llama``):
    ``vocab_size`` and ``context`` (the tokens a deployed model sees, which cost, latency and
    export are measured at; at most ``max_context``).

    The dense model (the teacher, every choice at its largest) is ``num_layers`` decoder
    layers of width ``hidden_size``, ``num_heads`` query heads and ``num_kv_heads``
    key/value heads of ``head_dim`` (``hidden_size / num_heads`` unless set), a SwiGLU of
    ``intermediate_size`` neurons, RMSNorm (``rms_norm_eps``), rotary positions
    (``rope_theta``) and input and output embeddings shared unless ``tie_embeddings`` is
    false.

    The search space: ``depths`` (default: every depth from half the layers up), per layer
    ``kv_heads``, the key/value heads kept (default: 1 up to ``num_kv_heads``), each with its
    whole group of ``num_heads / num_kv_heads`` query heads so grouped-query attention stays
    consistent, and ``intermediate_ratios`` of ``intermediate_size``. Which layers a depth
    keeps is the network's ``depth_order`` (weights, not config: the first layers until
    ``sort_by_importance`` measures which ones matter, as LLaMA-NAS and ShortGPT drop the
    least important); layer i's choices are those of the i-th layer a network runs.
    """

    label = "llama"

    vocab_size: int = Field(256, ge=2, le=1_000_000)
    context: int = Field(128, ge=1, le=65_536)
    max_context: int = Field(512, ge=1, le=1 << 24)
    hidden_size: int = Field(128, ge=1, le=65_536)
    num_layers: int = Field(4, ge=1, le=1024)
    num_heads: int = Field(4, ge=1, le=1024)
    num_kv_heads: int = Field(2, ge=1, le=1024)
    head_dim: int | None = Field(None, ge=2, le=4096)
    intermediate_size: int = Field(352, ge=1, le=1 << 20)
    rms_norm_eps: float = Field(1e-5, gt=0, le=1)
    rope_theta: float = Field(10_000.0, gt=1)
    tie_embeddings: bool = True
    depths: tuple[int, ...] | None = None
    kv_heads: tuple[int, ...] | None = None
    intermediate_ratios: tuple[float, ...] = RATIOS

    @field_validator("depths", "kv_heads", "intermediate_ratios", mode="before")
    @classmethod
    def _lists_are_options(cls, values: Any, info) -> Any:
        """JSON and YAML spell options as lists; a ratio may be spelt ``1`` for ``1.0`` (one
        spelling, so ``1`` and ``1.0`` make the same arch key). Types stay strict otherwise."""
        values = tuple(values) if isinstance(values, list) else values
        if info.field_name == "intermediate_ratios" and isinstance(values, tuple):
            return tuple(float(v) if type(v) is int else v for v in values)
        return values

    @field_validator("rope_theta", "rms_norm_eps", mode="before")
    @classmethod
    def _float(cls, value: Any) -> Any:
        return float(value) if type(value) is int else value

    @field_validator("depths", "kv_heads")
    @classmethod
    def _increasing(cls, values: tuple[int, ...] | None) -> tuple[int, ...] | None:
        if values is None:
            return None
        if len(values) > MAX_OPTIONS:
            raise ValueError(f"at most {MAX_OPTIONS} options, got {len(values)}")
        if not values or min(values) < 1 or list(values) != sorted(set(values)):
            raise ValueError(f"options must be strictly increasing positive ints, got {values}")
        return values

    @field_validator("intermediate_ratios")
    @classmethod
    def _ratios(cls, values: tuple[float, ...]) -> tuple[float, ...]:
        if not values or len(values) > MAX_OPTIONS:
            raise ValueError(f"needs 1 to {MAX_OPTIONS} ratios, got {len(values)}")
        if list(values) != sorted(set(values)) or values[0] <= 0 or values[-1] != 1.0:
            raise ValueError(f"ratios must increase strictly up to 1.0 (dense), got {values}")
        return values

    @model_validator(mode="after")
    def _consistent(self) -> LlamaConfig:
        if self.context > self.max_context:
            raise ValueError(f"context {self.context} is longer than max_context "
                             f"{self.max_context}")  # fmt: skip
        if self.head_dim is None and self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} does not split into num_heads "
                             f"{self.num_heads} heads")  # fmt: skip
        if self.num_heads % self.num_kv_heads:
            raise ValueError(f"num_heads {self.num_heads} is not a multiple of num_kv_heads "
                             f"{self.num_kv_heads}")  # fmt: skip
        if self.dim % 2:
            raise ValueError(f"head_dim {self.dim} is odd; rotary positions rotate pairs")
        dense = {"depths": (self.depth_options, self.num_layers),
                 "kv_heads": (self.kv_head_options, self.num_kv_heads)}  # fmt: skip
        for name, (options, largest) in dense.items():
            if options[-1] != largest:
                raise ValueError(f"{name} must end at the dense model's {largest}, got {options}")
        sizes = self.intermediate_sizes
        if sizes[0] < 1 or len(set(sizes)) != len(sizes):
            raise ValueError(f"intermediate_ratios {self.intermediate_ratios} of "
                             f"{self.intermediate_size} give sizes {sizes}: need distinct, "
                             "positive sizes")  # fmt: skip
        return self

    # -- derived shape -------------------------------------------------------------------
    @property
    def dim(self) -> int:
        """Channels of one head."""
        return self.head_dim or self.hidden_size // self.num_heads

    @property
    def group(self) -> int:
        """Query heads per key/value head (fixed: whole groups are kept or dropped)."""
        return self.num_heads // self.num_kv_heads

    @property
    def depth_options(self) -> tuple[int, ...]:
        if self.depths is not None:
            return self.depths
        return tuple(range(max(1, self.num_layers // 2), self.num_layers + 1))

    @property
    def kv_head_options(self) -> tuple[int, ...]:
        return self.kv_heads or tuple(range(1, self.num_kv_heads + 1))

    @property
    def intermediate_sizes(self) -> tuple[int, ...]:
        """Feed-forward neurons of each ratio (the last is the dense ``intermediate_size``)."""
        return tuple(round(r * self.intermediate_size) for r in self.intermediate_ratios)

    def intermediate(self, ratio: float) -> int:
        return self.intermediate_sizes[self.intermediate_ratios.index(ratio)]

    def deeper(self, i: int) -> tuple[int, ...] | None:
        """The depths that run an i-th layer; None when every depth does."""
        if i < self.depth_options[0]:
            return None
        return tuple(d for d in self.depth_options if d > i)

    def parameter_count(self) -> int:
        """Weights of the dense model: what building the super-network allocates."""
        h, q, kv = self.hidden_size, self.num_heads * self.dim, self.num_kv_heads * self.dim
        layer = 2 * h + 2 * q * h + 2 * kv * h + 3 * h * self.intermediate_size
        embeddings = self.vocab_size * h * (1 if self.tie_embeddings else 2)
        return embeddings + self.num_layers * layer + h

    @classmethod
    def for_spec(cls, overrides: Mapping[str, Any] | None, spec: Any) -> LlamaConfig | None:
        """The default config updated by ``overrides``, with the task's vocabulary and
        context set: what ``ElasticLlama.for_task`` builds, checked without building it.
        ``None`` for a task it cannot serve (``for_task`` says so)."""
        if not serves(spec):
            return None
        overrides = dict(overrides or {})
        for key in TASK_KEYS:
            if key in overrides:
                raise KeyedError(key, "is set by the dataset, not by overrides")
        task = {"vocab_size": spec.input.vocab_size, "context": spec.input.shape[0]}
        config = cls.from_dict({**overrides, **task})
        if config.parameter_count() > MAX_PARAMETERS:  # a pretrained folder may hold more
            raise KeyedError("", f"the super-network would hold {config.parameter_count():,} "
                             f"weights, more than the {MAX_PARAMETERS:,} allowed",
                             prefix="llama config: ")  # fmt: skip
        return config


def serves(spec: Any) -> bool:
    """A causal language model over tokens, predicting the same vocabulary it reads."""
    return (spec.kind == "language-model" and spec.input.kind == "tokens"
            and spec.outputs == spec.input.vocab_size)  # fmt: skip


class ArchLayer(NamedTuple):
    """What one layer of an arch runs: ``index`` is its place among the layers the arch
    runs (which layer of the dense model that is, the network's ``depth_order`` says)."""

    index: int
    kv_heads: int
    heads: int  # query heads: kv_heads x the group size
    hidden: int  # feed-forward neurons


def arch_layers(arch: Mapping[str, Value | None], config: LlamaConfig) -> Iterator[ArchLayer]:
    """The layers ``arch`` runs, in order: the one walk cost, memory and tables build on."""
    for i in range(int(arch["depth"])):
        kv = int(arch[f"l{i}.kv_heads"])
        yield ArchLayer(i, kv, kv * config.group, config.intermediate(float(arch[f"l{i}.ffn"])))


def build_space(config: LlamaConfig) -> Space:
    """``depth``, then per layer ``l{i}.kv_heads`` and ``l{i}.ffn`` (the intermediate
    ratio), which exist only when the network is deeper than i, so archs that differ only
    in layers a shallow one skips canonicalise to the same key."""
    choices = [ordinal("depth", config.depth_options)]
    for i in range(config.num_layers):
        deeper = config.deeper(i)
        cond: dict[str, Any] = {} if deeper is None else {"when": "depth", "in_": deeper}
        choices += [
            ordinal(f"l{i}.kv_heads", config.kv_head_options, **cond),
            ordinal(f"l{i}.ffn", config.intermediate_ratios, **cond),
        ]
    return Space(choices, name="llama")
