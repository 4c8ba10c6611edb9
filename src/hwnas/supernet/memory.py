"""Peak activation memory and weight storage of a sub-network, for microcontroller budgets.

On a microcontroller the binding limits are SRAM, which must hold every activation alive at
one moment, and flash, which holds the weights; MACs and parameter counts bound neither, and
the SRAM peak sits in the early high-resolution blocks, not where the compute is. As in MCUNet
and MCUFormer, the peak comes from walking the op schedule in execution order and summing the
tensors alive at each op. The walk over the config mirrors ``hwnas.supernet.cost``; the tests
hold every tensor shape of the schedule to the extracted module's.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import NamedTuple

from hwnas.errors import HwnasError
from hwnas.space import Arch, Value
from hwnas.supernet.mobilenet import MobileNetConfig, arch_blocks, out_size

ArchLike = Arch | Mapping[str, Value | None]


class Op(NamedTuple):
    """One op of a schedule: it reads ``inputs`` and writes one new tensor, named after the op,
    of ``elements`` elements."""

    name: str
    inputs: tuple[str, ...]
    elements: int


class Peak(NamedTuple):
    bytes: int
    op: str


def live_bytes(schedule: Sequence[Op], bytes_per_element: int = 4) -> dict[str, int]:
    """Bytes alive at each op, in schedule order.

    At an op the live set is its inputs, its output and every earlier tensor a later op still
    reads: a tensor lives from the op that writes it to the last op that reads it (a tensor no
    op reads, such as the final output, only at its own op).
    """
    last_read: dict[str, int] = {}
    for i, op in enumerate(schedule):
        if op.name in last_read:
            raise HwnasError(f"schedule writes tensor {op.name!r} twice")
        for name in op.inputs:
            if name not in last_read:
                raise HwnasError(f"op {op.name!r} reads {name!r} before any op writes it")
            last_read[name] = i
        last_read[op.name] = i
    sizes = {op.name: op.elements for op in schedule}
    profile: dict[str, int] = {}
    total = 0
    for i, op in enumerate(schedule):
        total += op.elements
        profile[op.name] = total * bytes_per_element
        total -= sum(sizes[name] for name in {*op.inputs, op.name} if last_read[name] == i)
    return profile


def peak_live(schedule: Sequence[Op], bytes_per_element: int = 4) -> Peak:
    """The most bytes alive at any op, and the first op where that happens."""
    profile = live_bytes(schedule, bytes_per_element)
    op = max(profile, key=profile.__getitem__)
    return Peak(profile[op], op)


def mobilenet_schedule(arch: ArchLike, config: MobileNetConfig, input_size: int) -> list[Op]:
    """The ops of one batch-1 inference of sub-network ``arch`` on ``input_size`` images.

    Ops are ``input``, ``resize`` (only when the arch's resolution differs from
    ``input_size``), ``stem``, per block ``s{i}.b{j}.`` + ``expand``, ``depthwise``,
    ``se.pool``, ``se.reduce``, ``se.expand`` (with the gate), ``se.mul`` (SE stages only),
    ``project`` and ``add`` (residual blocks only), then ``head``, ``pool`` and
    ``classifier``. Batch-norm is folded into its conv and activations run in place, so
    neither writes a tensor.
    """
    ops: list[Op] = []

    def op(name: str, inputs: tuple[str, ...], elements: int) -> str:
        ops.append(Op(name, inputs, elements))
        return name

    resolution = int(arch["resolution"])
    x = op("input", (), config.in_channels * input_size**2)
    if resolution != input_size:
        x = op("resize", (x,), config.in_channels * resolution**2)
    size = out_size(resolution, config.stem_stride)
    x = op("stem", (x,), config.stem_width * size**2)
    for spec, _, hidden in arch_blocks(arch, config):
        p = f"s{spec.stage}.b{spec.index}."
        out = out_size(size, spec.stride)
        y = op(p + "expand", (x,), hidden * size**2)
        y = op(p + "depthwise", (y,), hidden * out**2)
        if spec.se:
            s = op(p + "se.pool", (y,), hidden)
            s = op(p + "se.reduce", (s,), hidden // config.se_reduction)
            s = op(p + "se.expand", (s,), hidden)
            y = op(p + "se.mul", (y, s), hidden * out**2)
        y = op(p + "project", (y,), spec.out_channels * out**2)
        if spec.stride == 1 and spec.in_channels == spec.out_channels:
            y = op(p + "add", (x, y), spec.out_channels * out**2)
        x, size = y, out
    x = op("head", (x,), config.final_width * size**2)
    x = op("pool", (x,), config.final_width)
    op("classifier", (x,), config.num_classes)
    return ops


def peak_activation(
    arch: ArchLike, config: MobileNetConfig, input_size: int, bytes_per_element: int = 4
) -> Peak:
    """``peak_activation_bytes`` and the op where the peak happens."""
    return peak_live(mobilenet_schedule(arch, config, input_size), bytes_per_element)


def peak_activation_bytes(
    arch: ArchLike, config: MobileNetConfig, input_size: int, bytes_per_element: int = 4
) -> int:
    """Peak activation memory of one batch-1 inference, counted as MCUNet/MCUFormer do.

    Walking the ops in execution order, the live set at an op is its inputs, its output and
    every earlier tensor a later op still reads (such as a block's input, held for the
    residual add); the peak is the largest live set in bytes. Conventions: batch-norm is
    folded into the preceding conv and activations are fused or in place, so they write no
    tensor; every other op (resize, stem, expand, depthwise, SE pool, SE reduce, SE expand
    with its gate, SE multiply, project, residual add, head, global pool, classifier) writes a
    new one. The network input (``in_channels`` x ``input_size``^2) lives until the resize
    reads it, or until the stem does when the resolution equals ``input_size`` and there is
    no resize. Weights are not activations.
    """
    return peak_activation(arch, config, input_size, bytes_per_element).bytes


def _layers(arch: ArchLike, config: MobileNetConfig) -> Iterator[tuple[int, int, int]]:
    """Per conv and linear layer: weights, output channels, and float parameters per output
    channel besides the weights (2 for a batch-norm's affine, 1 for a bias)."""
    yield config.in_channels * config.stem_width * 9, config.stem_width, 2
    for spec, kernel, hidden in arch_blocks(arch, config):
        yield spec.in_channels * hidden, hidden, 2
        yield hidden * kernel * kernel, hidden, 2
        if spec.se:
            reduced = hidden // config.se_reduction
            yield hidden * reduced, reduced, 1
            yield reduced * hidden, hidden, 1
        yield hidden * spec.out_channels, spec.out_channels, 2
    yield config.widths[-1] * config.final_width, config.final_width, 2
    yield config.final_width * config.num_classes, config.num_classes, 1


def parameter_bytes(arch: ArchLike, config: MobileNetConfig) -> dict[str, int]:
    """Weight storage of sub-network ``arch`` in two forms.

    ``fp32``: 4 bytes per parameter of the extracted module, batch-norm affine included
    (4 x ``cost.params``). ``int8``: the deployable form, batch-norm folded into the
    preceding conv; each conv or linear weight is 1 byte, and each output channel carries a
    4-byte int32 bias and a 4-byte float scale.
    """
    layers = list(_layers(arch, config))
    return {
        "fp32": 4 * sum(weights + extra * channels for weights, channels, extra in layers),
        "int8": sum(weights + 8 * channels for weights, channels, _ in layers),
    }
