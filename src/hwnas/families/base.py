"""The family contract: an elastic super-network, and everything hwnas asks of one.

A family is one ``nn.Module`` class that owns the weights of every sub-network of its
``Space``. The trainer, the evaluators, the latency tables and the exporter talk to it only
through the hooks below, so a new family is one module plus one line in ``FAMILIES``, and
the tests that run over ``FAMILIES`` hold it to the contract.

Hooks, grouped by who calls them and when:

- Building (the pipeline, once): ``for_task`` validates overrides and sets what the task
  decides (input shape, outputs); ``from_config`` rebuilds from a stored config (checkpoints,
  profiles). ``config.to_dict()`` is JSON and identifies the network.
- Training (``SandwichTrainer``, every step): ``set_active`` then ``forward`` (``__call__``);
  ``auxiliary_loss`` after each forward; ``teacher_arch`` and ``smallest_arch`` bound every
  sandwich step; ``phases`` and ``sort_by_importance`` drive progressive shrinking (and,
  given calibration inputs, InstaTune's start from a dense model).
- Reporting (run results, reports): ``label``, a short readable name of an arch.
- Evaluating (evaluators, per arch): ``extract`` (a plain module with copied weights, same
  outputs), ``cost``, ``op_schedule`` and ``weight_bytes``, all analytic except ``extract``.
- Timing and export (hardware, export): ``input_spec``/``example_input``, and
  ``deployed_shape``/``deployed_input`` for an exported arch's own input size; the latency
  lookup table's ``layer_catalogue``, ``layer_schedule``, ``layer_module`` (one per
  catalogue entry) and ``layer_modules`` (one arch, layer by layer).

Archs given to any hook may be an ``Arch`` of this space or a name->value mapping; hooks that
need the canonical form call ``canonical``.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, NamedTuple, Protocol, Self, runtime_checkable

import torch
from torch import nn

from hwnas.errors import HwnasError
from hwnas.precision import QuantizableLayer, strip_policy
from hwnas.space import Arch, Space, Value
from hwnas.tasks.base import InputSpec, TaskSpec

ArchLike = Arch | Mapping[str, Value | None]


class Cost(NamedTuple):
    """Multiply-accumulates of one batch-1 inference and parameters of the extracted module:
    what ``torch.utils.flop_counter`` and ``parameters()`` count, and the tests hold to."""

    macs: int
    params: int


class Op(NamedTuple):
    """One op of an inference schedule: it reads ``inputs`` and writes one new tensor, named
    after the op, of ``elements`` elements."""

    name: str
    inputs: tuple[str, ...]
    elements: int


@dataclass(frozen=True)
class Layer:
    """One entry of a latency lookup table: a kind, the settings that change its cost, and
    the shape (batch excluded) and kind of input it receives.

    FBNet and Once-for-All estimate a network's latency as the sum of its layers', each timed
    once per configuration and input shape; two archs that run the same layer share its entry,
    so a few hundred timings cover a space of ~1e16 archs.
    """

    kind: str
    settings: tuple[tuple[str, Value], ...]
    input_shape: tuple[int, ...]
    input_kind: str = "float"  # or "tokens": int64 ids
    part: str | None = field(default=None, compare=False)
    """The quantizable layer (``Family.quantizable_layers``) this entry computes where it was
    scheduled, None for a layer that always runs in fp32. Not part of the key: one entry
    serves every position that runs these settings."""
    precision: str = "fp32"

    @property
    def key(self) -> str:
        """e.g. ``mbconv(in=16,out=24,stride=2,se=0,hswish=0,kernel=5,expand=3)@16x16x16``,
        with ``:int8`` appended for a layer quantized to INT8."""
        settings = ",".join(f"{k}={v}" for k, v in self.settings)
        key = f"{self.kind}({settings})@{'x'.join(map(str, self.input_shape))}"
        return key if self.precision == "fp32" else f"{key}:{self.precision}"

    def get(self, name: str) -> Value:
        return dict(self.settings)[name]

    def example(self, batch_size: int) -> torch.Tensor:
        """An input to time this layer on (values do not change latency)."""
        if self.input_kind == "tokens":
            return torch.zeros(batch_size, *self.input_shape, dtype=torch.int64)
        return torch.randn(batch_size, *self.input_shape)


@dataclass(frozen=True)
class Phase:
    """A stage of progressive shrinking: the choices that may vary from now on (the others
    are held at the teacher's value), and whether to sort weights by importance first,
    because this phase opens a dimension that keeps the first channels, heads or neurons."""

    name: str
    opens: frozenset[str]
    sort_first: bool = False


@runtime_checkable
class Family(Protocol):
    """An elastic super-network (see the module docstring for when each hook is called)."""

    name: ClassVar[str]
    config_class: ClassVar[type]
    """The validated config: ``from_dict`` (one-line HwnasError on a bad value), ``to_dict``."""
    training_defaults: ClassVar[Mapping[str, Any]]
    """Optimizer, learning rate, weight decay, warm-up, gradient clipping, ``teacher_only``
    and ``distillation`` that suit the family; a config's ``train`` section overrides each
    (``resolve_settings``)."""
    small_overrides: ClassVar[Mapping[str, Any]]
    """Overrides for a small instance that trains in seconds: what contract tests and smoke
    runs build, so every registered family is tested without the tests naming it."""
    config: Any

    @classmethod
    @abstractmethod
    def for_task(cls, overrides: Mapping[str, Any] | None, spec: TaskSpec) -> Self:
        """The default config updated by ``overrides``, with what ``spec`` decides set; a
        task this family cannot serve, or an override of a task-set key, is an HwnasError."""

    @classmethod
    def from_config(cls, values: Mapping[str, Any]) -> Self:
        """Rebuild from ``config.to_dict()`` (untrained weights); bad values: HwnasError."""
        return cls(cls.config_class.from_dict(values))

    @classmethod
    def from_pretrained(
        cls, folder: Path, context: int | None = None, overrides: Mapping[str, Any] | None = None
    ) -> Self:
        """The dense super-network of a pretrained model in ``folder`` (its weights loaded;
        ``overrides`` choose the space): InstaTune's starting point. Families that read no
        such folders refuse it."""
        raise HwnasError(f"{folder}: the {cls.name} family loads no pretrained model folders; "
                         "give a checkpoint of hwnas train --dense")  # fmt: skip

    @abstractmethod
    def space(self) -> Space: ...

    @abstractmethod
    def input_spec(self) -> InputSpec: ...

    @abstractmethod
    def teacher_arch(self) -> Arch:
        """The sub-network trained on the labels, whose outputs the others distil from."""

    @abstractmethod
    def smallest_arch(self) -> Arch:
        """The lower end of the sandwich: trained every step so the small end stays good."""

    @abstractmethod
    def label(self, arch: ArchLike) -> str:
        """A short name for ``arch`` that a person can read in a table or a plot (its key
        runs to hundreds of characters); it need not be unique, the key is."""

    @abstractmethod
    def phases(self) -> Sequence[Phase]:
        """Progressive-shrinking phases in order; the last one opens every choice."""

    @abstractmethod
    def sort_by_importance(self, inputs: torch.Tensor | None = None) -> None:
        """Reorder elastic channels (neurons, heads) most important first, the largest
        network's function kept. Progressive shrinking calls it without ``inputs`` (weight
        norms); InstaTune with calibration ``inputs`` (importance from activations on them,
        and, where the family can, the order in which depth drops layers)."""

    @abstractmethod
    def set_active(self, arch: ArchLike) -> Arch:
        """Select the sub-network ``forward`` runs; returns the canonical arch."""

    def auxiliary_loss(self) -> torch.Tensor | None:
        """Loss terms of the last forward the family adds to the task's (e.g. expert load
        balance); ``None`` when it has none."""
        return None

    @abstractmethod
    def extract(self, arch: ArchLike) -> nn.Module:
        """A standalone plain-torch copy of sub-network ``arch`` with the same outputs."""

    @abstractmethod
    def cost(self, arch: ArchLike) -> Cost: ...

    @abstractmethod
    def op_schedule(self, arch: ArchLike) -> list[Op]:
        """The tensors one batch-1 inference writes, in order (for peak activation memory)."""

    @abstractmethod
    def weight_bytes(self, arch: ArchLike) -> dict[str, int]:
        """Weight storage: ``fp32`` (4 bytes a parameter) and ``int8`` (the deployable form)."""

    @abstractmethod
    def layer_schedule(self, arch: ArchLike) -> list[Layer]:
        """The lookup-table layers ``arch`` runs, in order; they compose to ``extract``."""

    @abstractmethod
    def layer_catalogue(self) -> list[Layer]:
        """Every distinct layer any arch of the space runs: what a lookup table must hold."""

    @abstractmethod
    def layer_module(self, layer: Layer) -> nn.Module:
        """A standalone module computing ``layer`` with weights of the super-network (of any
        position that runs these settings: a table times it, the weights do not matter)."""

    @abstractmethod
    def layer_modules(self, arch: ArchLike) -> list[nn.Module]:
        """The modules of ``layer_schedule(arch)`` with ``arch``'s own weights, in order:
        composed, they compute ``extract(arch)`` (per-layer work starts from these)."""

    # -- shared by every family ----------------------------------------------------------
    def example_input(
        self, batch_size: int = 1, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Random valid inputs for export checks and latency timing."""
        return self.input_spec().example(batch_size, generator)

    def deployed_input(
        self, arch: ArchLike, batch_size: int = 1, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Random inputs of the shape ``arch`` itself runs at, which is what its exported
        model takes: a family whose archs choose their input size (an elastic resolution)
        overrides ``deployed_shape``, so no resize hides inside a deployed graph."""
        spec = self.input_spec()
        shape = self.deployed_shape(arch)
        return InputSpec(spec.kind, shape, spec.vocab_size).example(batch_size, generator)

    def deployed_shape(self, arch: ArchLike) -> tuple[int, ...]:
        """One input's shape for ``arch`` (batch excluded); the task's unless overridden."""
        return self.input_spec().shape

    def canonical(self, arch: ArchLike) -> Arch:
        """Validate ``arch`` against this network's space and return its canonical form.

        An arch of a precision search (``hwnas.precision``) carries ``precision.*`` values as
        well; they are not the family's business and are dropped here, so every hook answers
        for the architecture alone."""
        space = self.space()
        if isinstance(arch, Arch):
            names = arch.names  # the policy-free case first: every hook passes here
            if names != space.names and strip_policy(dict.fromkeys(names)).keys() != set(
                space.names
            ):
                raise HwnasError("arch does not belong to this super-network's space")
            arch = arch.to_dict()
        return space.make(strip_policy(arch))

    # -- precision search (hwnas.precision) ------------------------------------------------
    def quantizable_layers(self) -> list[QuantizableLayer]:
        """The layers whose precision a search may choose, each with the architecture
        condition under which it exists; none unless the family declares them."""
        return []

    def quantizable_modules(self, arch: ArchLike) -> dict[str, tuple[str, ...]]:
        """For the quantizable layers ``arch`` runs: the module paths in ``extract(arch)``
        (hence the ONNX nodes) that make each of them up."""
        return {}

    def to_deployed(self, arch: ArchLike, x: torch.Tensor) -> torch.Tensor:
        """Task inputs as ``arch``'s deployed model takes them (``deployed_shape``): what
        ``extract(arch)`` does to its input before its first layer; identity unless the
        family overrides ``deployed_shape``."""
        return x


class MeasuredDepth:
    """Depth that keeps the layers most worth keeping, for families of identical layers
    (the transformer's, LLaMA's). The family registers a ``depth_order`` buffer (its
    layers, most worth keeping first: the identity until ``sort_by_importance`` measures
    block influence) and says what an arch's running layers run (``layer_settings``); a
    network of depth d runs the first d of ``depth_order``, in network order. This is the
    one place that decides which layers a shallower network keeps."""

    layers: nn.ModuleList
    depth_order: torch.Tensor
    active: Arch

    def layer_settings(self, arch: Arch) -> Sequence[Any]:
        """What each layer ``arch`` runs does, in order (one entry per running layer)."""
        raise NotImplementedError

    def running_layers(self, depth: int) -> list[int]:
        return sorted(int(i) for i in self.depth_order[:depth])

    def _apply(self, fn: Any, recurse: bool = True) -> Any:
        """Moves and casts the weights (``nn.Module.to``), never ``depth_order``: numbers
        read on the host at every forward, which on an accelerator would wait for it."""
        order = self.depth_order
        module = super()._apply(fn, recurse)  # type: ignore[misc]
        if order.device.type == "cpu":  # one built on the meta device still gets real storage
            self._buffers["depth_order"] = order  # type: ignore[attr-defined]
        return module

    def running(self, arch: Arch) -> list[tuple[nn.Module, Any]]:
        """(layer, its setting) for each layer ``arch`` (canonical) runs, in order."""
        indices = self.running_layers(int(arch["depth"]))
        settings = self.layer_settings(arch)
        return [(self.layers[i], s) for i, s in zip(indices, settings, strict=True)]

    def set_active(self, arch: ArchLike) -> Arch:
        arch = self.canonical(arch)  # type: ignore[attr-defined]
        for layer, setting in self.running(arch):
            layer.setting = setting
        self.active = arch
        return arch

    def active_layers(self) -> list[nn.Module]:
        return [self.layers[i] for i in self.running_layers(int(self.active["depth"]))]


def refuse_task_keys(family: str, overrides: Mapping[str, Any], keys: Sequence[str]) -> None:
    """Keys the task sets (input shape, classes) may not come from overrides."""
    for key in keys:
        if key in overrides:
            raise HwnasError(f"{family} config: {key!r} is set by the dataset, not by overrides")


class SquareImageClassifier:
    """``for_task`` and ``input_spec`` of a family that classifies square images, whose
    ``config_class`` has ``in_channels``, ``num_classes`` and ``input_size`` (set by the
    task). Listed before ``Family`` among a family's bases."""

    config_class: ClassVar[type]
    config: Any
    name: ClassVar[str]

    @classmethod
    def for_task(cls, overrides: Mapping[str, Any] | None, spec: TaskSpec) -> Self:
        """Image classification only: channels, classes and input size come from the data;
        another task, non-square images or overrides of those keys are refused in one line."""
        if spec.kind != "classification" or spec.input.kind != "image":
            raise HwnasError(f"supernet {cls.name} cannot serve a {spec.kind} task (it "
                             "classifies images); use supernet.name: transformer")  # fmt: skip
        channels, height, width = spec.input.shape
        if height != width:
            raise HwnasError(f"supernet {cls.name} needs square images, got {height}x{width}")
        overrides = dict(overrides or {})
        refuse_task_keys(cls.name, overrides, ("in_channels", "num_classes", "input_size"))
        values = {**cls.config_class().to_dict(), **overrides, "in_channels": channels,
                  "num_classes": spec.outputs, "input_size": height}  # fmt: skip
        return cls.from_config(values)  # type: ignore[attr-defined]

    def input_spec(self) -> InputSpec:
        c = self.config
        return InputSpec("image", (c.in_channels, c.input_size, c.input_size))
