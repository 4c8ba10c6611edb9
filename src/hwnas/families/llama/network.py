"""An elastic LLaMA-style decoder: RMSNorm, rotary positions, SwiGLU, grouped-query
attention, tied or untied embeddings, causal. Its largest arch is the dense model, so a
pretrained Hugging Face checkpoint (``load_llama``) is the teacher as it was trained.

Elastic dimensions, as in LLaMA-NAS: depth (a depth of k runs the first k layers of
``depth_order``, in network order), and per layer the key/value heads, each kept with its
whole group of query heads so every query head still reads the key/value head it was
trained with, and the SwiGLU's neurons. Every elastic size takes the first heads or neurons
of the dense layer; ``sort_by_importance`` puts the most important first and, given
calibration inputs, orders the layers depth drops.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from hwnas.errors import HwnasError
from hwnas.families.base import (
    ArchLike,
    Cost,
    Family,
    Layer,
    MeasuredDepth,
    Op,
    Phase,
    refuse_task_keys,
)
from hwnas.families.llama import cost as costs
from hwnas.families.llama import layers, static
from hwnas.families.llama.config import (
    TASK_KEYS,
    ArchLayer,
    LlamaConfig,
    arch_layers,
    build_space,
    serves,
)
from hwnas.families.llama.operators import grouped_attention, rms_norm, rope_tables
from hwnas.families.mobilenet.elastic import reorder_
from hwnas.families.transformer import static as blocks
from hwnas.families.transformer.network import INIT_STD, ElasticTransformer, _weight
from hwnas.families.transformer.operators import gated
from hwnas.precision import QuantizableLayer
from hwnas.space import Arch, Space
from hwnas.tasks.base import InputSpec, TaskSpec


class ElasticDecoderLayer(nn.Module):
    """One decoder layer holding its dense form; ``setting`` says what it runs."""

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        c = self.config = config
        h, q, kv = c.hidden_size, c.num_heads * c.dim, c.num_kv_heads * c.dim
        residual_std = INIT_STD / math.sqrt(2 * c.num_layers)  # GPT-2's scaled init
        self.norm1 = nn.Parameter(torch.ones(h))
        self.q, self.k, self.v = _weight(q, h), _weight(kv, h), _weight(kv, h)
        self.o = _weight(h, q, std=residual_std)
        self.norm2 = nn.Parameter(torch.ones(h))
        self.gate, self.up = _weight(c.intermediate_size, h), _weight(c.intermediate_size, h)
        self.down = _weight(h, c.intermediate_size, std=residual_std)
        self.setting: ArchLayer | None = None

    def _mixed(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """The heads' attention outputs, concatenated (before the output projection)."""
        s, c = self.setting, self.config
        q_rows, kv_rows = s.heads * c.dim, s.kv_heads * c.dim  # whole groups: the first ones
        h = rms_norm(x, self.norm1, c.rms_norm_eps)
        return grouped_attention(F.linear(h, self.q[:q_rows]), F.linear(h, self.k[:kv_rows]),
                                 F.linear(h, self.v[:kv_rows]), s.kv_heads, cos, sin)  # fmt: skip

    def _hidden(self, x: torch.Tensor) -> torch.Tensor:
        """The SwiGLU's neurons, gated (what the down projection reads)."""
        hidden, h = self.setting.hidden, rms_norm(x, self.norm2, self.config.rms_norm_eps)
        return gated(F.linear(h, self.gate[:hidden]), F.linear(h, self.up[:hidden]))

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        s, dim = self.setting, self.config.dim
        x = x + F.linear(self._mixed(x, cos, sin), self.o[:, : s.heads * dim])
        return x + F.linear(self._hidden(x), self.down[:, : s.hidden])

    def export(self, setting: ArchLayer) -> blocks.Block:
        """A plain ``Block`` with copied weights for ``setting``."""
        c = self.config
        q_rows, kv_rows = setting.heads * c.dim, setting.kv_heads * c.dim
        attention = static.GroupedAttention(c.hidden_size, setting.heads, setting.kv_heads,
                                            c.dim, c.context, c.rope_theta)  # fmt: skip
        ffn = blocks.GLU(c.hidden_size, setting.hidden)
        norm = functools.partial(static.RMSNorm, eps=c.rms_norm_eps)
        block = blocks.Block(c.hidden_size, attention, ffn, norm=norm)
        with torch.no_grad():
            attention.q.weight.copy_(self.q[:q_rows])
            attention.k.weight.copy_(self.k[:kv_rows])
            attention.v.weight.copy_(self.v[:kv_rows])
            attention.o.weight.copy_(self.o[:, :q_rows])
            ffn.gate.weight.copy_(self.gate[: setting.hidden])
            ffn.up.weight.copy_(self.up[: setting.hidden])
            ffn.down.weight.copy_(self.down[:, : setting.hidden])
            block.norm1.weight.copy_(self.norm1)
            block.norm2.weight.copy_(self.norm2)
        return block

    # -- importance ------------------------------------------------------------------------
    def weight_importance(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Each key/value group by the norm of its query heads' output projection (what the
        group can add to the residual stream); each neuron by the product of its gate, up
        and down norms (a SwiGLU neuron adds ``silu(gate.x) (up.x) down``, which grows with
        all three). No data needed: Once-for-All's choice."""
        c = self.config
        o = self.o.detach().reshape(c.hidden_size, c.num_kv_heads, c.group * c.dim)
        neurons = self.gate.detach().norm(dim=1) * self.up.detach().norm(dim=1)
        return o.norm(dim=(0, 2)), neurons * self.down.detach().norm(dim=0)

    def activation_importance(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, float]:
        """What the dense setting does with its input ``x`` (the residual stream): each
        key/value group by the mean norm of its query heads' attention outputs, each neuron
        by its mean absolute gated activation (Minitron's activation-based importance), and
        the layer by its block influence, 1 - cos(input, output) averaged over tokens
        (ShortGPT, the measure LLaMA-NAS-style depth pruning drops layers by)."""
        c = self.config
        mixed = self._mixed(x, cos, sin)
        groups = mixed.unflatten(-1, (c.num_kv_heads, c.group * c.dim)).norm(dim=-1)
        middle = x + F.linear(mixed, self.o)
        hidden = self._hidden(middle)
        out = middle + F.linear(hidden, self.down)
        influence = 1 - F.cosine_similarity(x, out, dim=-1).mean()
        return groups.mean(dim=(0, 1)), hidden.abs().mean(dim=(0, 1)), float(influence)

    def sort_by(self, group_score: torch.Tensor, neuron_score: torch.Tensor) -> None:
        """Put the highest-scoring key/value groups and neurons first (the dense function
        unchanged). A group moves whole, its query heads with it, so each query head keeps
        its key/value head, and each head keeps its rotary channel pairs."""
        c = self.config
        span = c.group * c.dim  # query rows of one group
        order = torch.argsort(group_score, descending=True, stable=True)
        query = (order[:, None] * span + torch.arange(span, device=order.device)).reshape(-1)
        key = (order[:, None] * c.dim + torch.arange(c.dim, device=order.device)).reshape(-1)
        reorder_(self.q, query, 0)
        reorder_(self.o, query, 1)
        for weight in (self.k, self.v):
            reorder_(weight, key, 0)
        order = torch.argsort(neuron_score, descending=True, stable=True)
        for weight in (self.gate, self.up):
            reorder_(weight, order, 0)
        reorder_(self.down, order, 1)


class ElasticLlama(MeasuredDepth, nn.Module, Family):
    """The super-network. ``set_active`` picks a sub-network; ``forward`` runs it."""

    name = "llama"
    config_class = LlamaConfig
    training_defaults = ElasticTransformer.training_defaults
    small_overrides = {"hidden_size": 16, "num_layers": 2, "num_heads": 4, "num_kv_heads": 2,
                       "intermediate_size": 32, "intermediate_ratios": (0.5, 0.75, 1.0),
                       "depths": (1, 2), "max_context": 64}  # fmt: skip

    def __init__(self, config: LlamaConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or LlamaConfig()
        self._space = build_space(c)
        self.token = _weight(c.vocab_size, c.hidden_size)
        self.layers = nn.ModuleList(ElasticDecoderLayer(c) for _ in range(c.num_layers))
        # on the CPU even when built on the meta device (load_llama): it is read as numbers
        self.register_buffer("depth_order", torch.arange(c.num_layers, device="cpu"))
        self.norm = nn.Parameter(torch.ones(c.hidden_size))
        head = None if c.tie_embeddings else _weight(c.vocab_size, c.hidden_size)
        self.register_parameter("head", head)
        self.active = self.teacher_arch()
        self.set_active(self.active)

    # -- building ------------------------------------------------------------------------
    @classmethod
    def for_task(cls, overrides: Mapping[str, Any] | None, spec: TaskSpec) -> ElasticLlama:
        """A causal language model over the task's vocabulary and context (set by the task:
        the keys in ``TASK_KEYS``); image tasks are refused."""
        overrides = dict(overrides or {})
        refuse_task_keys(cls.name, overrides, TASK_KEYS)
        if not serves(spec):
            vocab = f" of {spec.outputs} outputs" if spec.input.kind == "tokens" else ""
            raise HwnasError(
                f"supernet llama cannot serve a {spec.kind} task on {spec.input.kind}{vocab}"
            )
        config = LlamaConfig.for_spec(overrides, spec)
        return cls(config)

    @classmethod
    def from_pretrained(
        cls, folder: str | Path, context: int | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> ElasticLlama:  # fmt: skip
        """The dense super-network of a local Hugging Face folder (``load_llama``)."""
        from hwnas.families.llama.pretrained import load_llama

        return load_llama(folder, context, overrides)

    def space(self) -> Space:
        return self._space

    def input_spec(self) -> InputSpec:
        return InputSpec("tokens", (self.config.context,), self.config.vocab_size)

    # -- training ------------------------------------------------------------------------
    def teacher_arch(self) -> Arch:
        """The dense model: every choice at its last (largest) option."""
        return self._space.make({c.name: c.options[-1] for c in self._space.choices})

    def smallest_arch(self) -> Arch:
        return self._space.make({c.name: c.options[0] for c in self._space.choices})

    def label(self, arch: ArchLike) -> str:
        """Depth, query heads and feed-forward neurons over the layers run: ``d3 h10 i528``."""
        layers = list(arch_layers(self.canonical(arch), self.config))
        heads, hidden = sum(s.heads for s in layers), sum(s.hidden for s in layers)
        return f"d{len(layers)} h{heads} i{hidden}"

    def phases(self) -> tuple[Phase, ...]:
        """The dense model; then depth; last the heads and neurons, sorted by importance
        first."""
        return (
            Phase("full", frozenset()),
            Phase("depth", frozenset({"depth"})),
            Phase("width", frozenset(self._space.names), sort_first=True),
        )

    def layer_settings(self, arch: Arch) -> list[ArchLayer]:
        return list(arch_layers(arch, self.config))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.config
        h = F.embedding(x, self.token)
        cos, sin = rope_tables(x.shape[1], c.dim, c.rope_theta, device=h.device)
        for layer in self.active_layers():
            h = layer(h, cos, sin)
        head = self.token if self.head is None else self.head
        return F.linear(rms_norm(h, self.norm, c.rms_norm_eps), head)

    def sort_by_importance(self, inputs: torch.Tensor | None = None) -> None:
        """Without ``inputs``, key/value groups and neurons by their weights' norms. With
        calibration ``inputs``, by their activations on them in the dense model
        (``ElasticDecoderLayer.activation_importance``), and the order in which depth drops
        layers: least block influence first. The dense function is unchanged either way."""
        if inputs is None:
            for layer in self.layers:
                layer.sort_by(*layer.weight_importance())
            return
        previous, was_training = self.active, self.training
        self.set_active(self.teacher_arch())
        self.eval()
        c, influence = self.config, []
        with torch.no_grad():
            h = F.embedding(inputs, self.token)
            cos, sin = rope_tables(inputs.shape[1], c.dim, c.rope_theta, device=h.device)
            for layer in self.layers:
                groups, neurons, score = layer.activation_importance(h, cos, sin)
                influence.append(score)
                h = layer(h, cos, sin)
                layer.sort_by(groups, neurons)
        self.depth_order.copy_(torch.argsort(torch.tensor(influence), descending=True,
                                             stable=True))  # fmt: skip
        self.train(was_training)
        self.set_active(previous)

    # -- precision search ----------------------------------------------------------------
    def quantizable_layers(self) -> list[QuantizableLayer]:
        """Every decoder layer (at the depths that run it): only matrix products with
        constant weights, so int4 weight-only as well. The embeddings and the head stay
        fp32, as the transformer family's do."""
        c, quantizable = self.config, []
        for i in range(c.num_layers):
            deeper = c.deeper(i)
            quantizable.append(QuantizableLayer(f"l{i}", linear=True,
                                                when=None if deeper is None else "depth",
                                                in_=deeper or ()))  # fmt: skip
        return quantizable

    def quantizable_modules(self, arch: ArchLike) -> dict[str, tuple[str, ...]]:
        depth = int(self.canonical(arch)["depth"])
        return {f"l{i}": (f"blocks.{i}",) for i in range(depth)}

    # -- evaluating ----------------------------------------------------------------------
    def export_embed(self) -> static.TokenEmbedding:
        c = self.config
        embed = static.TokenEmbedding(c.vocab_size, c.hidden_size)
        with torch.no_grad():
            embed.token.weight.copy_(self.token)
        return embed

    def export_head(self) -> blocks.TokenHead:
        c = self.config
        norm = functools.partial(static.RMSNorm, eps=c.rms_norm_eps)
        head = blocks.TokenHead(c.hidden_size, c.vocab_size, norm=norm)
        with torch.no_grad():
            head.logits.weight.copy_(self.token if self.head is None else self.head)
            head.norm.weight.copy_(self.norm)
        return head

    def layer_modules(self, arch: ArchLike) -> list[nn.Module]:
        arch = self.canonical(arch)
        decoders = [layer.export(s) for layer, s in self.running(arch)]
        return [self.export_embed(), *decoders, self.export_head()]

    def extract(self, arch: ArchLike) -> blocks.TransformerNet:
        """A standalone copy of ``arch``, in this module's mode; tied embeddings stay tied."""
        embed, *decoders, head = self.layer_modules(arch)
        net = blocks.TransformerNet(embed, nn.Sequential(*decoders), head)
        if self.config.tie_embeddings:
            net.head.logits.weight = net.embed.token.weight
        return net.train(self.training)

    def cost(self, arch: ArchLike) -> Cost:
        return costs.cost(self.canonical(arch), self.config)

    def op_schedule(self, arch: ArchLike) -> list[Op]:
        return costs.schedule(self.canonical(arch), self.config)

    def weight_bytes(self, arch: ArchLike) -> dict[str, int]:
        return costs.weight_bytes(self.canonical(arch), self.config)

    # -- latency tables ------------------------------------------------------------------
    def layer_schedule(self, arch: ArchLike) -> list[Layer]:
        return layers.schedule(self.canonical(arch), self.config)

    def layer_catalogue(self) -> list[Layer]:
        return layers.catalogue(self.config)

    def layer_module(self, layer: Layer) -> nn.Module:
        return layers.module(self, layer)
