"""Export chosen sub-networks as files someone else can deploy: an ONNX model that takes any
batch at the arch's own input size, carrying in its metadata everything needed to feed it
(preprocessing, vocabulary or class names) and what it was measured to do; a JSON file
beside it with the same, its sha256 and its latency as exported, timed after writing.

Each model is checked against PyTorch before it is written, so a file that exists is one
that computes what was searched.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from hwnas.files import write_atomic
from hwnas.hardware.measure import onnx_session, time_calls, to_onnx
from hwnas.hardware.settings import LatencySettings

TOLERANCE = 1e-4
CHECK_BATCHES = (1, 3)  # batch 1 as traced, and another through the dynamic batch axis


def export_subnet(
    module: torch.nn.Module,
    example: Callable[[int, torch.Generator], torch.Tensor],
    path: Path,
    description: dict[str, Any],
    latency: LatencySettings,
    checks: int = 8,
    seed: int = 0,
) -> dict[str, Any]:
    """Write ``path`` (.onnx) and ``path.with_suffix('.json')`` and return what the JSON file
    holds beyond ``description``: the input, the parity with PyTorch (max abs difference on
    ``checks`` random inputs, refused above 1e-4), the file's size, sha256 and latency.

    ``example(batch, generator)`` draws valid inputs at the arch's own input size
    (``Family.deployed_input``); ``description`` (arch, metrics, preprocessing, ...) is JSON
    and goes into the ONNX metadata as one entry per key.
    """
    module = module.eval()
    first = example(1, torch.Generator().manual_seed(seed))
    traced = to_onnx(module, first, dynamic_batch=True)
    session = onnx_session(traced, threads=1)
    generator = torch.Generator().manual_seed(seed + 1)
    worst = 0.0
    with torch.no_grad():
        for i in range(checks):
            x = example(CHECK_BATCHES[i % len(CHECK_BATCHES)], generator)
            expected = module(x).numpy()
            got = session.run(None, {"input": x.numpy()})[0]
            worst = max(worst, float(np.max(np.abs(expected - got))))
    if worst > TOLERANCE:
        raise RuntimeError(f"ONNX export of {description.get('key')} differs from PyTorch "
                           f"by {worst:.2e}")  # fmt: skip
    return write_model(traced, example, path, description, latency, {"max_abs_diff": worst})


def write_model(
    model: bytes,
    example: Callable[[int, torch.Generator], torch.Tensor],
    path: Path,
    description: dict[str, Any],
    latency: LatencySettings,
    checked: dict[str, Any],
) -> dict[str, Any]:
    """Write a checked ONNX ``model`` (fp32 as traced, or quantized) with ``description`` in
    its metadata, time the written file, and write the JSON beside it; ``checked`` says how
    it was checked (the parity with PyTorch, or a quantized model's quality agreement)."""
    first = example(1, torch.Generator().manual_seed(0))
    shape = ["batch", *first.shape[1:]]
    model_input = {"name": "input", "shape": shape, "dtype": str(first.dtype).split(".")[-1]}
    payload = _with_metadata(model, {**description, "input": model_input})
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, payload)
    timing = _time_file(path, example(latency.batch_size, torch.Generator()), latency)
    record = {
        "onnx": path.name,
        "input": model_input,
        **checked,
        "bytes": len(payload),
        "sha256": hashlib.sha256(payload).hexdigest(),
        "exported_latency_ms": timing.median_ms,
        "exported_latency_iqr_ms": timing.iqr_ms,
        "exported_latency_settings": latency.model_dump(),
    }
    write_atomic(path.with_suffix(".json"), json.dumps({**description, **record}, indent=2))
    return record


def _with_metadata(model_bytes: bytes, description: dict[str, Any]) -> bytes:
    """The model with ``description`` in ``metadata_props`` (``hwnas.<key>`` -> JSON), which
    ONNX Runtime shows as ``custom_metadata_map``."""
    model = onnx.load_from_string(model_bytes)
    model.producer_name = "hwnas"
    for key, value in description.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = f"hwnas.{key}", json.dumps(value)
    return model.SerializeToString()


def _time_file(path: Path, x: torch.Tensor, settings: LatencySettings):
    """The written file as a deployment loads it, on ONNX Runtime with the run's threads."""
    session = onnx_session(path.read_bytes(), settings.threads)
    feed = {"input": x.numpy()}
    return time_calls(lambda: session.run(None, feed), settings)


def read_metadata(path: Path) -> dict[str, Any]:
    """The ``hwnas.*`` metadata of an exported model, decoded (for users and tests)."""
    model = onnx.load(str(path), load_external_data=False)
    prefix = "hwnas."
    return {p.key.removeprefix(prefix): json.loads(p.value) for p in model.metadata_props
            if p.key.startswith(prefix)}  # fmt: skip
