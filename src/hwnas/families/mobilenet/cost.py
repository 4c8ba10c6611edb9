"""Analytic MACs and parameter counts of a sub-network, without building it.

Searchers screen many thousands of archs against a compute budget; counting by walking the
config is microseconds where building and tracing a module is milliseconds. The counts cover
what ``torch.utils.flop_counter`` counts (convolutions and linear layers, the SE included)
and the parameters of the extracted module, and the tests hold them to both.
"""

from __future__ import annotations

from hwnas.families.base import ArchLike, Cost
from hwnas.families.mobilenet.config import MobileNetConfig, arch_blocks, out_size


def cost(arch: ArchLike, config: MobileNetConfig) -> Cost:
    """Multiply-accumulates at the arch's resolution and parameters of its extracted module."""
    size = out_size(int(arch["resolution"]), config.stem_stride)
    macs = config.in_channels * config.stem_width * 9 * size * size
    params = config.in_channels * config.stem_width * 9 + 2 * config.stem_width
    for spec, k, hidden in arch_blocks(arch, config):
        out = out_size(size, spec.stride)
        macs += spec.in_channels * hidden * size * size  # expand
        macs += hidden * k * k * out * out  # depthwise
        macs += hidden * spec.out_channels * out * out  # project
        params += spec.in_channels * hidden + hidden * k * k + hidden * spec.out_channels
        params += 2 * (hidden + hidden + spec.out_channels)  # batch-norm affine
        if spec.se:
            reduced = hidden // config.se_reduction
            macs += 2 * hidden * reduced
            params += 2 * hidden * reduced + reduced + hidden
        size = out
    macs += config.widths[-1] * config.final_width * size * size
    params += config.widths[-1] * config.final_width + 2 * config.final_width
    macs += config.final_width * config.num_classes
    params += config.final_width * config.num_classes + config.num_classes
    return Cost(macs, params)
