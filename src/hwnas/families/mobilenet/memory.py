"""The MobileNet's op schedule (for peak activation memory) and its weight storage.

The walk over the config mirrors ``cost``; the tests hold every tensor shape of the schedule
to the extracted module's.
"""

from __future__ import annotations

from collections.abc import Iterator

from hwnas.families.base import ArchLike, Op
from hwnas.families.memory import Peak, peak_live
from hwnas.families.mobilenet.config import MobileNetConfig, arch_blocks, out_size


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
