"""An elastic pre-norm transformer whose layers choose their attention and feed-forward
operators: a byte-level causal language model on tokens, a vision transformer on images.

Elastic dimensions: depth, the width of the residual stream, and per layer the heads, the
feed-forward width (``mlp_ratio`` x width), the attention kind and the feed-forward kind.
Every elastic size takes the first channels, heads or neurons of the largest layer, as in
HAT and Once-for-All. What the operators share:

- attention: one set of Q/K/V/O projections serves softmax, sigmoid and linear attention;
  only the function of the scores differs.
- feed-forward: the MLP's up and down projections are shared by all three kinds. The gated
  (SwiGLU) layer applies them as its value and output projections and owns only its gate.
  The mixture of experts splits the same neurons into ``experts`` interleaved groups
  (neuron j belongs to expert j mod E, so at every width the experts together are exactly
  the MLP's neurons) and owns only its router.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

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
from hwnas.families.mobilenet.elastic import reorder_
from hwnas.families.transformer import cost as costs
from hwnas.families.transformer import layers, operators, static
from hwnas.families.transformer.config import (
    TASK_KEYS,
    ArchLayer,
    TransformerConfig,
    arch_layers,
    build_space,
    capacity,
)
from hwnas.precision import QuantizableLayer
from hwnas.space import Arch, Space
from hwnas.tasks.base import InputSpec, TaskSpec

INIT_STD = 0.02


class Importance(NamedTuple):
    """One layer's scores on calibration data (``ElasticLayer.activation_importance``)."""

    heads: torch.Tensor
    neurons: torch.Tensor
    channels: torch.Tensor
    influence: float


def _weight(*shape: int, std: float = INIT_STD) -> nn.Parameter:
    return nn.Parameter(torch.randn(shape) * std)


class ElasticLayer(nn.Module):
    """One transformer layer holding its largest form; ``setting`` says what it runs."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        width, inner = max(config.widths), max(config.heads) * config.head_dim
        hidden = width * max(config.mlp_ratios)
        residual_std = INIT_STD / math.sqrt(2 * config.max_depth)  # GPT-2's scaled init
        self.config = config
        self.norm1 = nn.LayerNorm(width)
        self.q, self.k, self.v = (_weight(inner, width) for _ in range(3))
        self.o = _weight(width, inner, std=residual_std)
        self.norm2 = nn.LayerNorm(width)
        self.up = _weight(hidden, width)
        self.down = _weight(width, hidden, std=residual_std)
        self.gate = _weight(hidden, width) if "glu" in config.feed_forwards else None
        self.router = _weight(config.experts, width) if "moe" in config.feed_forwards else None
        self.setting: ArchLayer | None = None
        self.balance: torch.Tensor | None = None  # the last forward's load-balancing loss

    # -- the active slices ---------------------------------------------------------------
    def _inner(self) -> int:
        return self.setting.heads * self.config.head_dim

    def _expert(self, weight: torch.Tensor, e: int, rows: bool) -> torch.Tensor:
        """Expert ``e``'s share of an up (``rows``) or down projection: every E-th neuron."""
        n = self.config.experts
        if rows:
            return weight.reshape(weight.shape[0] // n, n, weight.shape[1])[:, e]
        return weight.reshape(weight.shape[0], weight.shape[1] // n, n)[:, :, e]

    def _norm(self, norm: nn.LayerNorm, x: torch.Tensor) -> torch.Tensor:
        width = x.shape[-1]
        return F.layer_norm(x, (width,), norm.weight[:width], norm.bias[:width])

    def _mixed(self, h: torch.Tensor) -> torch.Tensor:
        """The heads' attention outputs, concatenated (before the output projection)."""
        s, width, inner = self.setting, h.shape[-1], self._inner()
        q, k, v = (F.linear(h, w[:inner, :width]) for w in (self.q, self.k, self.v))
        return operators.attend(q, k, v, s.heads, s.attention, self.config.causal,
                                self.config.linear_chunk)  # fmt: skip

    def _hidden(self, h: torch.Tensor, gated: bool) -> torch.Tensor:
        """The feed-forward neurons' activations: the MLP's (every expert's, in a mixture),
        or SwiGLU's gated ones."""
        s, width = self.setting, h.shape[-1]
        up = F.linear(h, self.up[: s.hidden, :width])
        if gated:
            return operators.gated(F.linear(h, self.gate[: s.hidden, :width]), up)
        return F.gelu(up)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s, width = self.setting, x.shape[-1]
        x = x + F.linear(self._mixed(self._norm(self.norm1, x)), self.o[:width, : self._inner()])
        h = self._norm(self.norm2, x)
        up, down = self.up[: s.hidden, :width], self.down[:width, : s.hidden]
        self.balance = None
        if s.feed_forward in ("mlp", "glu"):
            y = F.linear(self._hidden(h, s.feed_forward == "glu"), down)
        else:
            experts = [
                (
                    lambda t, e=e: F.linear(
                        F.gelu(F.linear(t, self._expert(up, e, True))), self._expert(down, e, False)
                    )
                )  # fmt: skip
                for e in range(self.config.experts)
            ]
            logits = F.linear(h, self.router[:, :width])
            limit = capacity(h.shape[1], s.top_k, self.config)
            y, self.balance = operators.route(h, logits, experts, s.top_k, limit)
        return x + y

    # -- export --------------------------------------------------------------------------
    def export(self, width: int, setting: ArchLayer) -> static.Block:
        """A plain ``Block`` with copied weights for ``setting`` at ``width``."""
        c = self.config
        inner = setting.heads * c.head_dim
        attention = static.Attention(width, setting.heads, c.head_dim, setting.attention,
                                     c.causal, c.linear_chunk)  # fmt: skip
        up, down = self.up[: setting.hidden, :width], self.down[:width, : setting.hidden]
        with torch.no_grad():
            for target, source in ((attention.q, self.q), (attention.k, self.k),
                                   (attention.v, self.v)):  # fmt: skip
                target.weight.copy_(source[:inner, :width])
            attention.o.weight.copy_(self.o[:width, :inner])
            if setting.feed_forward == "mlp":
                ffn = static.MLP(width, setting.hidden)
                ffn.up.weight.copy_(up)
                ffn.down.weight.copy_(down)
            elif setting.feed_forward == "glu":
                ffn = static.GLU(width, setting.hidden)
                ffn.gate.weight.copy_(self.gate[: setting.hidden, :width])
                ffn.up.weight.copy_(up)
                ffn.down.weight.copy_(down)
            else:
                ffn = static.MixtureOfExperts(width, setting.hidden, c.experts, setting.top_k,
                                              capacity(c.sequence, setting.top_k, c))  # fmt: skip
                ffn.router.weight.copy_(self.router[:, :width])
                for e, expert in enumerate(ffn.experts):
                    expert.up.weight.copy_(self._expert(up, e, True))
                    expert.down.weight.copy_(self._expert(down, e, False))
            block = static.Block(width, attention, ffn)
            for target, source in ((block.norm1, self.norm1), (block.norm2, self.norm2)):
                target.weight.copy_(source.weight[:width])
                target.bias.copy_(source.bias[:width])
        return block

    # -- importance ------------------------------------------------------------------------
    def weight_importance(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Heads by the norm of their output projection; neurons by the product of their up
        and down norms (no data needed: Once-for-All's choice)."""
        c = self.config
        heads = max(c.heads)
        head_norm = self.o.detach().reshape(self.o.shape[0], heads, c.head_dim).norm(dim=(0, 2))
        return head_norm, self.up.detach().norm(dim=1) * self.down.detach().norm(dim=0)

    def activation_importance(self, x: torch.Tensor) -> Importance:
        """What the largest setting does with its input ``x`` (the residual stream): each
        head by the mean norm of its attention output, each neuron by its mean absolute
        activation (Minitron's activation-based importance), each residual channel by the
        mean magnitude of the normalised inputs, and the layer by its block influence,
        1 - cos(input, output) averaged over tokens (ShortGPT): how much it changes the
        stream, so the layer a shallower network can best do without has the least."""
        c, s = self.config, self.setting
        h = self._norm(self.norm1, x)
        mixed = self._mixed(h)
        heads = mixed.reshape(*mixed.shape[:-1], s.heads, c.head_dim).norm(dim=-1)
        middle = x + F.linear(mixed, self.o[: x.shape[-1], : self._inner()])
        h2 = self._norm(self.norm2, middle)
        neurons = self._hidden(h2, s.feed_forward == "glu").abs()
        out = self.forward(x)
        influence = 1 - F.cosine_similarity(x, out, dim=-1).mean()
        channels = (h.abs().mean(dim=(0, 1)) + h2.abs().mean(dim=(0, 1))) / 2
        return Importance(heads.mean(dim=(0, 1)), neurons.mean(dim=(0, 1)), channels,
                          float(influence))  # fmt: skip

    def sort_by(self, head_score: torch.Tensor, neuron_score: torch.Tensor) -> None:
        """Put the highest-scoring heads and neurons first (function unchanged); neurons are
        sorted within each expert's group so experts keep their neurons."""
        c = self.config
        order = torch.argsort(head_score, descending=True, stable=True)
        perm = (
            order[:, None] * c.head_dim + torch.arange(c.head_dim, device=order.device)
        ).reshape(-1)
        for weight in (self.q, self.k, self.v):
            reorder_(weight, perm, 0)
        reorder_(self.o, perm, 1)
        score = neuron_score
        groups = c.experts if self.router is not None else 1
        by_group = score.reshape(-1, groups)  # column g: the neurons of expert g
        order = torch.argsort(by_group, dim=0, descending=True, stable=True)
        perm = (order * groups + torch.arange(groups, device=order.device)).reshape(-1)
        for weight in (self.up, self.gate):
            if weight is not None:
                reorder_(weight, perm, 0)
        reorder_(self.down, perm, 1)


class ElasticTransformer(MeasuredDepth, nn.Module, Family):
    """The super-network. ``set_active`` picks a sub-network; ``forward`` runs it."""

    name = "transformer"
    config_class = TransformerConfig
    training_defaults = {"optimizer": "adamw", "learning_rate": 3e-3, "weight_decay": 0.05,
                         "warmup": 0.05, "grad_clip": 1.0, "teacher_only": 0.25,
                         "distillation": 0.5}  # fmt: skip
    small_overrides = {"widths": (16, 32), "depths": (1, 2), "heads": (1, 2), "head_dim": 8,
                       "mlp_ratios": (1, 2), "experts": 2, "linear_chunk": 4,
                       "max_context": 64}  # fmt: skip

    def __init__(self, config: TransformerConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or TransformerConfig()
        self._space = build_space(c)
        width = max(c.widths)
        if c.input == "tokens":
            self.token = _weight(c.vocab_size, width)
        else:
            self.patch = _weight(width, c.in_channels, c.patch_size, c.patch_size)
            self.patch_bias = nn.Parameter(torch.zeros(width))
            self.cls = _weight(width)
        self.position = _weight(c.positions, width)
        self.layers = nn.ModuleList(ElasticLayer(c) for _ in range(c.max_depth))
        self.register_buffer("depth_order", torch.arange(c.max_depth, device="cpu"))  # host
        self.norm = nn.LayerNorm(width)
        if c.input == "image":
            self.head = _weight(c.outputs, width)
            self.head_bias = nn.Parameter(torch.zeros(c.outputs))
        self.active = self.teacher_arch()
        self.set_active(self.active)

    # -- building ------------------------------------------------------------------------
    @classmethod
    def for_task(cls, overrides: Mapping[str, Any] | None, spec: TaskSpec) -> ElasticTransformer:
        """Tokens: a causal language model over the task's context; images: a vision
        transformer on patches. The task sets the keys in ``TASK_KEYS``."""
        overrides = dict(overrides or {})
        refuse_task_keys(cls.name, overrides, TASK_KEYS)
        shape = spec.input.shape
        if spec.input.kind == "tokens" and spec.kind == "language-model":
            task = {"input": "tokens", "vocab_size": spec.input.vocab_size, "context": shape[0],
                    "in_channels": None, "image_size": None}  # fmt: skip
        elif spec.input.kind == "image" and spec.kind == "classification":
            if shape[1] != shape[2]:
                raise HwnasError(f"supernet transformer needs square images, got {shape[1:]}")
            task = {"input": "image", "vocab_size": None, "context": None,
                    "in_channels": shape[0], "image_size": shape[1]}  # fmt: skip
        else:
            raise HwnasError(
                f"supernet transformer cannot serve a {spec.kind} task on {spec.input.kind}"
            )
        return cls.from_config({**overrides, **task, "outputs": spec.outputs})

    def space(self) -> Space:
        return self._space

    def input_spec(self) -> InputSpec:
        c = self.config
        if c.input == "tokens":
            return InputSpec("tokens", (c.context,), c.vocab_size)
        return InputSpec("image", (c.in_channels, c.image_size, c.image_size))

    # -- training ------------------------------------------------------------------------
    def _extreme(self, pick: int) -> Arch:
        """Every ordinal choice at its first (``pick=0``) or last (-1) option; operators at
        the first listed kind (softmax and MLP by default)."""
        values = {c.name: c.options[pick] if c.ordinal else c.options[0]
                  for c in self._space.choices}  # fmt: skip
        return self._space.make(values)

    def teacher_arch(self) -> Arch:
        return self._extreme(-1)

    def smallest_arch(self) -> Arch:
        return self._extreme(0)

    def label(self, arch: ArchLike) -> str:
        """Depth, width and how many layers run each operator: ``d4 w96 softmax2 sigmoid2
        mlp1 moe3``."""
        values = self.canonical(arch).to_dict()
        counts: dict[str, int] = {}
        for kind in ("attention", "ffn"):
            for name, value in values.items():
                if name.endswith(f".{kind}") and value is not None:
                    counts[str(value)] = counts.get(str(value), 0) + 1
        operators = " ".join(f"{op}{n}" for op, n in counts.items())
        return f"d{values['depth']} w{values['width']} {operators}"

    def quantizable_layers(self) -> list[QuantizableLayer]:
        """Every block (while the network is that deep): its projections and feed-forward
        are matrix products, so int4 weight-only as well. The embedding and the head stay
        fp32: the token head shares the embedding's weights, which a lookup reads."""
        c = self.config
        layers = []
        for i in range(c.max_depth):
            deeper = tuple(d for d in c.depths if d > i)
            when = None if i < min(c.depths) else "depth"
            layers.append(QuantizableLayer(f"l{i}", linear=True, when=when,
                                           in_=deeper if when else ()))  # fmt: skip
        return layers

    def quantizable_modules(self, arch: ArchLike) -> dict[str, tuple[str, ...]]:
        depth = int(self.canonical(arch)["depth"])
        return {f"l{i}": (f"blocks.{i}",) for i in range(depth)}

    def phases(self) -> tuple[Phase, ...]:
        """The full network; then the operators open; then depth; last every size, with
        heads and neurons sorted by importance first."""
        names = self._space.names
        kinds = frozenset(n for n in names if n.rsplit(".", 1)[-1] in ("attention", "ffn", "moe_k"))
        return (
            Phase("full", frozenset()),
            Phase("operators", kinds),
            Phase("depth", kinds | {"depth"}),
            Phase("width", frozenset(names), sort_first=True),
        )

    def layer_settings(self, arch: Arch) -> list[ArchLayer]:
        return list(arch_layers(arch, self.config))

    def _width(self) -> int:
        return int(self.active["width"])

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        d = self._width()
        if self.config.input == "tokens":
            return F.embedding(x, self.token[:, :d]) + self.position[: x.shape[1], :d]
        patches = F.conv2d(x, self.patch[:d], self.patch_bias[:d], stride=self.config.patch_size)
        patches = patches.flatten(2).transpose(1, 2)
        cls = self.cls[:d].expand(x.shape[0], 1, d)
        return torch.cat([cls, patches], dim=1) + self.position[:, :d]

    def head_logits(self, x: torch.Tensor) -> torch.Tensor:
        d = self._width()
        if self.config.input == "tokens":
            return F.linear(F.layer_norm(x, (d,), self.norm.weight[:d], self.norm.bias[:d]),
                            self.token[:, :d])  # fmt: skip
        cls = F.layer_norm(x[:, 0], (d,), self.norm.weight[:d], self.norm.bias[:d])
        return F.linear(cls, self.head[:, :d], self.head_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x)
        for layer in self.active_layers():
            h = layer(h)
        return self.head_logits(h)

    def auxiliary_loss(self) -> torch.Tensor | None:
        """The mixture-of-experts layers' load-balancing losses of the last forward, summed
        and weighted by ``balance_weight``; None when no active layer routes."""
        losses = [layer.balance for layer in self.active_layers() if layer.balance is not None]
        if not losses:
            return None
        return self.config.balance_weight * torch.stack(losses).sum()

    def sort_by_importance(self, inputs: torch.Tensor | None = None) -> None:
        """Without ``inputs``, heads and neurons by their weights' norms. With calibration
        ``inputs``, by their activations on them (``ElasticLayer.activation_importance``),
        the residual stream's channels too (for narrower widths), and the order in which
        depth drops layers: least block influence first. The largest network's function
        is unchanged either way."""
        if inputs is None:
            for layer in self.layers:
                layer.sort_by(*layer.weight_importance())
            return
        previous, was_training = self.active, self.training
        self.set_active(self.teacher_arch())
        self.eval()
        scores = []
        with torch.no_grad():
            h = self.embed(inputs)
            for layer in self.layers:
                scores.append(layer.activation_importance(h))
                h = layer(h)
        for layer, score in zip(self.layers, scores, strict=True):
            layer.sort_by(score.heads, score.neurons)
        channels = torch.stack([score.channels for score in scores]).sum(dim=0)
        self._permute_width(torch.argsort(channels, descending=True, stable=True))
        influence = torch.tensor([score.influence for score in scores])
        self.depth_order.copy_(torch.argsort(influence, descending=True, stable=True))
        self.train(was_training)
        self.set_active(previous)

    def _permute_width(self, perm: torch.Tensor) -> None:
        """Reorder the residual stream's channels in every tensor that reads or writes it:
        layer norms normalise over all channels, so the full width computes the same."""
        wide = [(self.position, 1), (self.norm.weight, 0), (self.norm.bias, 0)]
        if self.config.input == "tokens":
            wide.append((self.token, 1))
        else:
            wide += [(self.patch, 0), (self.patch_bias, 0), (self.cls, 0), (self.head, 1)]
        for layer in self.layers:
            wide += [(layer.norm1.weight, 0), (layer.norm1.bias, 0), (layer.norm2.weight, 0),
                     (layer.norm2.bias, 0), (layer.q, 1), (layer.k, 1), (layer.v, 1),
                     (layer.o, 0), (layer.up, 1), (layer.down, 0)]  # fmt: skip
            wide += [(w, 1) for w in (layer.gate, layer.router) if w is not None]
        for tensor, dim in wide:
            reorder_(tensor, perm, dim)

    # -- evaluating ----------------------------------------------------------------------
    def export_embed(self, width: int) -> nn.Module:
        c = self.config
        with torch.no_grad():
            if c.input == "tokens":
                embed = static.TokenEmbedding(c.vocab_size, width, c.context)
                embed.token.weight.copy_(self.token[:, :width])
                embed.position.copy_(self.position[: c.context, :width])
                return embed
            embed = static.PatchEmbedding(c.in_channels, width, c.patch_size, c.sequence)
            embed.project.weight.copy_(self.patch[:width])
            embed.project.bias.copy_(self.patch_bias[:width])
            embed.cls.copy_(self.cls[:width].reshape(1, 1, width))
            embed.position.copy_(self.position[:, :width].unsqueeze(0))
            return embed

    def export_head(self, width: int) -> nn.Module:
        c = self.config
        with torch.no_grad():
            if c.input == "tokens":
                head = static.TokenHead(width, c.vocab_size)
                head.logits.weight.copy_(self.token[:, :width])
            else:
                head = static.ClassHead(width, c.outputs)
                head.logits.weight.copy_(self.head[:, :width])
                head.logits.bias.copy_(self.head_bias)
            head.norm.weight.copy_(self.norm.weight[:width])
            head.norm.bias.copy_(self.norm.bias[:width])
        return head

    def layer_modules(self, arch: ArchLike) -> list[nn.Module]:
        arch = self.canonical(arch)
        width = int(arch["width"])
        blocks = [layer.export(width, s) for layer, s in self.running(arch)]
        return [self.export_embed(width), *blocks, self.export_head(width)]

    def extract(self, arch: ArchLike) -> static.TransformerNet:
        """A standalone copy of ``arch``, in this module's mode; token heads stay tied."""
        embed, *blocks, head = self.layer_modules(arch)
        net = static.TransformerNet(embed, nn.Sequential(*blocks), head)
        if self.config.input == "tokens":
            net.head.logits.weight = net.embed.token.weight
        return net.train(self.training)

    def cost(self, arch: ArchLike) -> Cost:
        return costs.cost(arch, self.config)

    def op_schedule(self, arch: ArchLike) -> list[Op]:
        return costs.schedule(arch, self.config)

    def weight_bytes(self, arch: ArchLike) -> dict[str, int]:
        return costs.weight_bytes(arch, self.config)

    # -- latency tables ------------------------------------------------------------------
    def layer_schedule(self, arch: ArchLike) -> list[Layer]:
        return layers.schedule(arch, self.config)

    def layer_catalogue(self) -> list[Layer]:
        return layers.catalogue(self.config)

    def layer_module(self, layer: Layer) -> nn.Module:
        return layers.module(self, layer)
