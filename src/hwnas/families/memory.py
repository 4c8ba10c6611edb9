"""Peak activation memory over an op schedule, for microcontroller budgets.

On a microcontroller the binding limits are SRAM, which must hold every activation alive at
one moment, and flash, which holds the weights; MACs and parameter counts bound neither, and
the SRAM peak sits where tensors are large, not where the compute is. As in MCUNet and
MCUFormer, the peak comes from walking a family's op schedule (``Family.op_schedule``) in
execution order and summing the tensors alive at each op.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from hwnas.errors import HwnasError
from hwnas.families.base import Op


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
