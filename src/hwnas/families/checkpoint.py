"""Super-network checkpoints: safetensors weights plus a JSON header that says what they fit.

Weights are only meaningful for the space and config they were trained in; the header names
both so a resume against another network is refused with a one-line error instead of loading
mismatched tensors (or, worse, silently loading a prefix). safetensors never unpickles, and a
digest of the tensor bytes catches corruption that the format itself would not notice. Files
are written to a temporary name and renamed, so a crash leaves the old checkpoint or the new
one, never half of one.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save

import hwnas
from hwnas.errors import HwnasError, one_line
from hwnas.families.base import Family
from hwnas.files import write_atomic

FORMAT = "hwnas.supernet/1"


def _digest(tensors: Mapping[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        h.update(name.encode())
        h.update(tensors[name].contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def optimizer_path(path: str | Path) -> Path:
    """Where the optimizer state of checkpoint ``path`` lives (beside it)."""
    path = Path(path)
    return path.with_name(path.name + ".optim")


def save_checkpoint(
    path: str | Path,
    model: Family,
    meta: Mapping[str, Any],
    optimizer: torch.optim.Optimizer | None = None,
) -> Path:
    """Write ``model``'s weights, its space and config, and ``meta`` (JSON) to ``path``.

    With ``optimizer``, its state goes to ``optimizer_path(path)`` first and the checkpoint
    records that file's digest, so a side file from another save is never paired with it.
    """
    path = Path(path)
    header = {
        "format": FORMAT,
        "hwnas_version": hwnas.__version__,
        "space": json.dumps(model.space().describe()),
        "config": json.dumps(model.config.to_dict()),
        "meta": json.dumps(dict(meta)),
    }
    if optimizer is not None:
        buffer = io.BytesIO()
        torch.save(optimizer.state_dict(), buffer)
        data = buffer.getvalue()
        write_atomic(optimizer_path(path), data)
        header["optimizer_sha256"] = hashlib.sha256(data).hexdigest()
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    header["sha256"] = _digest(tensors)
    write_atomic(path, save(tensors, metadata=header))
    return path


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _first_difference(saved: Any, current: Any, where: str) -> str | None:
    """The first place two JSON values differ, as 'where: checkpoint X, model Y'."""
    if isinstance(saved, dict) and isinstance(current, dict):
        for key in [*saved, *(k for k in current if k not in saved)]:
            if key not in saved or key not in current:
                side = "model" if key not in saved else "checkpoint"
                return f"{where}.{key} only in the {side}"
            found = _first_difference(saved[key], current[key], f"{where}.{key}")
            if found:
                return found
        return None
    if isinstance(saved, list) and isinstance(current, list) and len(saved) == len(current):
        for i, (a, b) in enumerate(zip(saved, current, strict=True)):
            label = json.dumps(a["name"]) if isinstance(a, dict) and "name" in a else i
            found = _first_difference(a, b, f"{where}[{label}]")
            if found:
                return found
        return None
    if saved != current:
        return f"{where}: checkpoint {_short(saved)}, model {_short(current)}"
    return None


def _read(path: Path) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    if not path.is_file():
        raise HwnasError(f"checkpoint {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not iterable)
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise HwnasError(f"checkpoint {path} is corrupt or not safetensors: {one_line(e)}") from e
    if header.get("format") != FORMAT:
        raise HwnasError(f"checkpoint {path} is not an hwnas super-network checkpoint")
    if header.get("sha256") != _digest(tensors):
        raise HwnasError(f"checkpoint {path} is corrupt: tensor data does not match its digest")
    return header, tensors


def load_checkpoint(
    path: str | Path,
    model: Family,
    optimizer: torch.optim.Optimizer | None = None,
) -> dict[str, Any]:
    """Load weights saved by ``save_checkpoint`` into ``model``; return the caller's meta.

    Refuses (``HwnasError``, one line naming the path and the first difference) a checkpoint
    for another space or config, and a missing or corrupt file; ``model`` is untouched then.
    """
    path = Path(path)
    header, tensors = _read(path)
    try:
        saved = {k: json.loads(header[k]) for k in ("space", "config", "meta")}
    except (KeyError, json.JSONDecodeError) as e:
        raise HwnasError(f"checkpoint {path} has a corrupt header: {one_line(e)}") from e
    current = {"space": model.space().describe(), "config": model.config.to_dict()}
    for key, value in current.items():
        found = _first_difference(saved[key], json.loads(json.dumps(value)), key)
        if found:
            raise HwnasError(f"checkpoint {path} does not fit this model: {found}")
    expected = {k: v.shape for k, v in model.state_dict().items()}
    got = {k: v.shape for k, v in tensors.items()}
    if expected != got:
        name = sorted(set(expected) ^ set(got)) or [k for k in expected if expected[k] != got[k]]
        raise HwnasError(f"checkpoint {path} does not fit this model: tensor {name[0]!r} differs")
    if optimizer is not None:
        try:
            optimizer.load_state_dict(_read_optimizer(path, header))
        except (ValueError, KeyError) as e:
            side = optimizer_path(path)
            raise HwnasError(f"{side} does not fit the optimizer: {one_line(e)}") from e
    model.load_state_dict(tensors)
    return saved["meta"]


def _read_optimizer(path: Path, header: Mapping[str, str]) -> dict[str, Any]:
    side = optimizer_path(path)
    if "optimizer_sha256" not in header:
        raise HwnasError(f"checkpoint {path} was saved without optimizer state")
    try:
        data = side.read_bytes()
    except OSError as e:
        raise HwnasError(f"optimizer state {side} cannot be read: {one_line(e)}") from e
    if hashlib.sha256(data).hexdigest() != header["optimizer_sha256"]:
        raise HwnasError(f"optimizer state {side} does not belong to checkpoint {path}")
    return torch.load(io.BytesIO(data), weights_only=True)
