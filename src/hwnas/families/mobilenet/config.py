"""The MobileNet's shape: its config, the blocks an arch runs, and its search space.

Cost, memory and latency-table code all walk ``arch_blocks``, so they cannot disagree about
which blocks exist. Nothing here needs torch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from hwnas.errors import HwnasError, KeyedError
from hwnas.space import Space, Value, ordinal

_TUPLE_FIELDS = {
    "widths": int,
    "strides": int,
    "depths": int,
    "kernels": int,
    "expands": int,
    "resolutions": int,
    "se_stages": bool,
    "hswish_stages": bool,
}
_INT_FIELDS = (
    "in_channels",
    "num_classes",
    "input_size",
    "stem_width",
    "stem_stride",
    "final_width",
    "se_reduction",
)
_CHOICE_FIELDS = ("depths", "kernels", "expands", "resolutions")
TASK_KEYS = ("in_channels", "num_classes", "input_size")

# Bounds, generous for a network trained on CPUs: each keeps one bad number from asking for
# terabytes (resolutions [100000] once tried to allocate 640 GB before the first step).
# Images are at most 1024 pixels a side (data sets refuse more); channels stay at most
# 4096 wide (MobileNetV3-Large's widest layer is 960), kernels 31, expand ratios 16, stages
# and options 64 each, and the whole super-network at most MAX_PARAMETERS weights.
_LIMITS = {
    "in_channels": 64, "num_classes": 1_000_000, "input_size": 1024, "stem_width": 4096,
    "stem_stride": 8, "final_width": 16_384, "se_reduction": 4096, "widths": 4096,
    "strides": 8, "depths": 64, "kernels": 31, "expands": 16, "resolutions": 1024,
}  # fmt: skip
MAX_OPTIONS = 64
MAX_PARAMETERS = 2**28
"""256 Mi weights: 1 GiB at fp32, ~4 GiB with gradients and optimizer state; the default
super-network has ~0.5 Mi."""


def _invalid(name: str, detail: str) -> KeyedError:
    return KeyedError(name, detail, prefix="mobilenet config ")


class BlockSpec(NamedTuple):
    """Where a block sits and the fixed shape of its input and output."""

    stage: int
    index: int
    in_channels: int
    out_channels: int
    stride: int
    se: bool
    hswish: bool


@dataclass(frozen=True)
class MobileNetConfig:
    """Shape of the super-network; the default is small enough to train on CPUs at 32x32.

    The stem's stride 2 and expand ratios up to 4 keep a sandwich step of the largest
    network under a second on one CPU thread at batch 64 (stride 1 and ratio 6: ~3 s).

    ``in_channels``, ``num_classes`` and ``input_size`` (the side of the square images it is
    fed, before the arch's own resolution) come from the task.

    ``depths``, ``kernels``, ``expands`` and ``resolutions`` are the options of the search
    space (strictly increasing); the deepest depth is how many blocks each stage holds. SE and
    h-swish are on in the later stages, as in MobileNetV3, where feature maps are small and
    channels many.
    """

    in_channels: int = 3
    num_classes: int = 10
    input_size: int = 32
    stem_width: int = 16
    stem_stride: int = 2
    widths: tuple[int, ...] = (16, 24, 40, 64)
    strides: tuple[int, ...] = (1, 2, 2, 2)
    depths: tuple[int, ...] = (1, 2, 3, 4)
    kernels: tuple[int, ...] = (3, 5, 7)
    expands: tuple[int, ...] = (2, 3, 4)
    resolutions: tuple[int, ...] = (16, 20, 24, 28, 32)
    se_stages: tuple[bool, ...] = (False, False, True, True)
    hswish_stages: tuple[bool, ...] = (False, False, True, True)
    final_width: int = 128
    se_reduction: int = 4

    def __post_init__(self) -> None:
        for name in _INT_FIELDS:
            value = getattr(self, name)
            if type(value) is not int or not 1 <= value <= _LIMITS[name]:
                raise _invalid(name, f"expected an int in 1..{_LIMITS[name]}, got {value!r}")
        for name, kind in _TUPLE_FIELDS.items():
            value = getattr(self, name)
            ok = isinstance(value, tuple) and value and all(type(v) is kind for v in value)
            if not ok or len(value) > MAX_OPTIONS:
                what = "ints" if kind is int else "booleans"
                raise _invalid(
                    name, f"expected a list of 1..{MAX_OPTIONS} {what}, got {_short(value)}"
                )
            if kind is int and not 1 <= min(value) <= max(value) <= _LIMITS[name]:
                raise _invalid(name, f"values must be in 1..{_LIMITS[name]}, got {_short(value)}")
        for name in _CHOICE_FIELDS:
            value = getattr(self, name)
            if list(value) != sorted(set(value)):
                raise _invalid(name, f"options must be strictly increasing, got {value}")
        if any(k % 2 == 0 for k in self.kernels):
            raise _invalid("kernels", f"sizes must be odd, got {self.kernels}")
        n = len(self.widths)
        for name in ("strides", "se_stages", "hswish_stages"):
            if len(getattr(self, name)) != n:
                raise _invalid(name, f"needs one entry per stage ({n}, as widths)")
        for spec in self.blocks():
            if spec.se and spec.in_channels * min(self.expands) < self.se_reduction:
                raise _invalid(
                    "se_reduction",
                    f"{self.se_reduction} leaves no SE channels in stage {spec.stage}",
                )
        if self.parameter_count() > MAX_PARAMETERS:
            raise _invalid(
                "widths",
                f"the super-network would hold {self.parameter_count():,} weights, more than "
                f"the {MAX_PARAMETERS:,} allowed (narrower, shallower or fewer stages)",
            )

    def parameter_count(self) -> int:
        """Weights of the whole super-network (every block at its largest kernel and expand
        ratio, batch-norm and SE included): what building it allocates."""
        k, expand = max(self.kernels), max(self.expands)
        total = self.in_channels * self.stem_width * 9 + 2 * self.stem_width
        for spec in self.blocks():
            hidden = spec.in_channels * expand
            total += hidden * (spec.in_channels + k * k + spec.out_channels + 4)
            total += 2 * spec.out_channels
            if spec.se:
                total += 2 * hidden * (hidden // self.se_reduction) + hidden
        total += self.widths[-1] * self.final_width + 2 * self.final_width
        return total + (self.final_width + 1) * self.num_classes

    @property
    def max_depth(self) -> int:
        return max(self.depths)

    def blocks(self) -> Iterator[BlockSpec]:
        """Every block of the super-network (at the deepest depth), stage by stage."""
        in_channels = self.stem_width
        for i, (width, stride) in enumerate(zip(self.widths, self.strides, strict=True)):
            for j in range(self.max_depth):
                yield BlockSpec(
                    i,
                    j,
                    in_channels,
                    width,
                    stride if j == 0 else 1,
                    self.se_stages[i],
                    self.hswish_stages[i],
                )
                in_channels = width

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (tuples become lists), stored in checkpoints and run records."""
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> MobileNetConfig:
        """Inverse of ``to_dict``; an unknown key or a bad value is a one-line ``HwnasError``
        (a ``KeyedError`` naming the key)."""
        if not isinstance(values, Mapping):
            raise HwnasError(f"mobilenet config: expected a mapping, got {type(values).__name__}")
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - fields, key=str)
        if unknown:
            raise KeyedError(
                str(unknown[0]),
                f"mobilenet config has no key {unknown[0]!r} (known: {', '.join(sorted(fields))})",
            )
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})

    @classmethod
    def for_spec(cls, overrides: Mapping[str, Any] | None, spec: Any) -> MobileNetConfig | None:
        """The default config updated by ``overrides``, with what the task's ``TaskSpec``
        decides (channels, classes, input size) set: what ``ElasticMobileNet.for_task``
        builds, checked without building it (a config is checked before any data loads).
        ``None`` for a task it cannot serve (``for_task`` says so)."""
        if spec.kind != "classification" or spec.input.kind != "image":
            return None
        overrides = dict(overrides or {})
        for key in TASK_KEYS:
            if key in overrides:
                raise KeyedError(key, "is set by the dataset, not by overrides")
        channels, size = spec.input.shape[0], spec.input.shape[-1]
        values = {**cls().to_dict(), **overrides, "in_channels": channels,
                  "num_classes": spec.outputs, "input_size": size}  # fmt: skip
        return cls.from_dict(values)


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class ArchBlock(NamedTuple):
    """A block an arch runs: where it sits, and its kernel size and hidden channels."""

    spec: BlockSpec
    kernel: int
    hidden: int


def arch_blocks(arch: Mapping[str, Value | None], config: MobileNetConfig) -> Iterator[ArchBlock]:
    """The blocks ``arch`` runs, in order: the one walk that cost, memory and latency
    tables all build on, so they cannot disagree about which blocks exist."""
    for spec in config.blocks():
        if spec.index < int(arch[f"s{spec.stage}.depth"]):
            key = f"s{spec.stage}.b{spec.index}"
            yield ArchBlock(
                spec, int(arch[f"{key}.kernel"]), spec.in_channels * int(arch[f"{key}.expand"])
            )


def out_size(size: int, stride: int) -> int:
    """Spatial size after an odd-kernel conv padded by kernel // 2."""
    return (size - 1) // stride + 1


def build_space(config: MobileNetConfig) -> Space:
    """Choices ``resolution``, ``s{i}.depth``, ``s{i}.b{j}.kernel`` and ``s{i}.b{j}.expand``.

    Block j's choices exist only when the stage is deeper than j, so archs that differ only in
    the blocks a shallow stage skips canonicalise to the same key.
    """
    choices = [ordinal("resolution", config.resolutions)]
    for i in range(len(config.widths)):
        depth = f"s{i}.depth"
        choices.append(ordinal(depth, config.depths))
        for j in range(config.max_depth):
            deeper = [d for d in config.depths if d > j]
            cond: dict[str, Any] = {} if j < min(config.depths) else {"when": depth, "in_": deeper}
            choices.append(ordinal(f"s{i}.b{j}.kernel", config.kernels, **cond))
            choices.append(ordinal(f"s{i}.b{j}.expand", config.expands, **cond))
    return Space(choices, name="mobilenet")
