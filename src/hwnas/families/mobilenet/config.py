"""The MobileNet's shape: its config, the blocks an arch runs, and its search space.

Cost, memory and latency-table code all walk ``arch_blocks``, so they cannot disagree about
which blocks exist. Nothing here needs torch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from hwnas.errors import HwnasError
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
            if type(value) is not int or value < 1:
                raise HwnasError(f"config {name}: expected a positive int, got {value!r}")
        for name, kind in _TUPLE_FIELDS.items():
            value = getattr(self, name)
            ok = isinstance(value, tuple) and value and all(type(v) is kind for v in value)
            if not ok or (kind is int and min(value) < 1):
                what = "positive ints" if kind is int else "booleans"
                raise HwnasError(
                    f"config {name}: expected a non-empty list of {what}, got {value!r}"
                )
        for name in _CHOICE_FIELDS:
            value = getattr(self, name)
            if list(value) != sorted(set(value)):
                raise HwnasError(f"config {name}: options must be strictly increasing, got {value}")
        if any(k % 2 == 0 for k in self.kernels):
            raise HwnasError(f"config kernels: sizes must be odd, got {self.kernels}")
        n = len(self.widths)
        for name in ("strides", "se_stages", "hswish_stages"):
            if len(getattr(self, name)) != n:
                raise HwnasError(f"config {name}: needs one entry per stage ({n}, as widths)")
        for spec in self.blocks():
            if spec.se and spec.in_channels * min(self.expands) < self.se_reduction:
                raise HwnasError(
                    f"config se_reduction: {self.se_reduction} leaves no SE channels in stage "
                    f"{spec.stage}"
                )

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
        """Inverse of ``to_dict``; an unknown key is a one-line ``HwnasError``."""
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - fields)
        if unknown:
            raise HwnasError(
                f"mobilenet config has no key {unknown[0]!r} (known: {', '.join(sorted(fields))})"
            )
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


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
