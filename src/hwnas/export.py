"""Export chosen sub-networks: ONNX model plus a JSON description, verified against PyTorch."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from hwnas.files import write_atomic
from hwnas.hardware.measure import onnx_session, to_onnx
from hwnas.space import Arch

TOLERANCE = 1e-4


def export_subnet(
    module: torch.nn.Module,
    arch: Arch,
    example: Callable[[torch.Generator], torch.Tensor],
    path: Path,
    metrics: dict[str, float] | None = None,
    checks: int = 8,
    seed: int = 0,
) -> float:
    """Write ``path`` (.onnx) and ``path.with_suffix('.json')``; return the max abs difference
    between ONNX Runtime and PyTorch on ``checks`` random inputs (refused above 1e-4).

    ``example(generator)`` draws one valid input, batch included (``Family.example_input``),
    so images and token ids are exported alike.
    """
    module = module.eval()
    first = example(torch.Generator().manual_seed(seed))
    model = to_onnx(module, first)
    session = onnx_session(model, threads=1)
    generator = torch.Generator().manual_seed(seed + 1)
    worst = 0.0
    with torch.no_grad():
        for _ in range(checks):
            x = example(generator)
            expected = module(x).numpy()
            got = session.run(None, {"input": x.numpy()})[0]
            worst = max(worst, float(np.max(np.abs(expected - got))))
    if worst > TOLERANCE:
        raise RuntimeError(f"ONNX export of {arch.key} differs from PyTorch by {worst:.2e}")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, model)
    description = {"arch": arch.to_dict(), "key": arch.key, "metrics": metrics or {},
                   "onnx_max_abs_diff": worst, "input_shape": list(first.shape),
                   "input_dtype": str(first.dtype).removeprefix("torch.")}  # fmt: skip
    write_atomic(path.with_suffix(".json"), json.dumps(description, indent=2))
    return worst
