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
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load, save

import hwnas
from hwnas.errors import HwnasError, one_line
from hwnas.families.base import Family
from hwnas.files import write_atomic

FORMAT = "hwnas.supernet/1"
_HEADER_JSON = ("space", "config", "meta")
# What the trainer's meta holds, type-checked where present, so a damaged or hand-edited
# header is one line here instead of a traceback where the trainer reads it.
_META_TYPES: dict[str, tuple[type, ...]] = {
    "epoch": (int,), "seed": (int,), "train": (dict,), "data": (dict,), "history": (list,),
}  # fmt: skip


_HISTORY_NUMBERS = ("loss", "train_accuracy", "seconds", "samples_per_second")


class CheckpointMeta(dict):
    """The caller's meta (or one record of its history); a field it lacks is a one-line
    ``HwnasError`` naming the checkpoint and the field, not a ``KeyError``."""

    def __init__(self, values: Mapping[str, Any], where: str) -> None:
        super().__init__(values)
        self.where = where

    def __missing__(self, key: str) -> Any:
        raise HwnasError(f"{self.where} has no field {key!r}")


def _digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 of the tensors' names and bytes, read in place (no copy of any tensor)."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        h.update(name.encode())
        h.update(tensors[name].contiguous().reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


def optimizer_path(path: str | Path) -> Path:
    """Where the optimizer state of checkpoint ``path`` lives (beside it)."""
    path = Path(path)
    return path.with_name(path.name + ".optim")


def _incoming(side: Path) -> Path:
    """Where a save puts the new optimizer state until the checkpoint that names it is in."""
    return side.with_name(side.name + ".next")


def save_checkpoint(
    path: str | Path,
    model: Family,
    meta: Mapping[str, Any],
    optimizer: torch.optim.Optimizer | None = None,
) -> Path:
    """Write ``model``'s weights, its space and config, and ``meta`` (JSON) to ``path``.

    With ``optimizer``, its state goes to ``optimizer_path(path)`` and the checkpoint
    records that file's digest, so a side file from another save is never paired with it.
    The two files cannot be replaced at once: the new state is written beside the old one
    first, then the checkpoint, then the state moved into place, so a kill at any moment
    leaves a checkpoint whose state is one of the two files (``load_checkpoint`` takes the
    one whose digest it records).
    """
    path = Path(path)
    header = {
        "format": FORMAT,
        "hwnas_version": hwnas.__version__,
        "space": json.dumps(model.space().describe()),
        "config": json.dumps(model.config.to_dict()),
        "meta": json.dumps(dict(meta)),
    }
    side = optimizer_path(path)
    if optimizer is not None:
        data = optimizer_bytes(optimizer.state_dict())
        write_atomic(_incoming(side), data)
        header["optimizer_sha256"] = hashlib.sha256(data).hexdigest()
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    header["sha256"] = _digest(tensors)
    write_atomic(path, save(tensors, metadata=header))
    if optimizer is not None:
        os.replace(_incoming(side), side)
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


def _open(
    path: Path, model: Family
) -> tuple[dict[str, str], dict[str, Any], dict[str, torch.Tensor]]:
    """Header (raw and its JSON fields parsed) and tensors of a checkpoint, checked in order
    of cost: the header first, then every tensor's name and shape against ``model`` without
    reading any data, then the data against its digest. A file for another network is
    refused before its tensors are read, whatever their size."""
    if not path.exists():
        raise HwnasError(f"checkpoint {path} does not exist")
    if not path.is_file():
        raise HwnasError(f"checkpoint {path} is not a file")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
            if header.get("format") != FORMAT:
                raise HwnasError(f"checkpoint {path} is not an hwnas super-network checkpoint")
            saved = _check_header(path, header, model)
            expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
            got = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118
            if expected != got:
                name = sorted(set(expected) ^ set(got)) or [
                    k for k in expected if expected[k] != got[k]
                ]
                raise HwnasError(
                    f"checkpoint {path} does not fit this model: tensor {name[0]!r} differs"
                )
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not iterable)
    except (SafetensorError, OSError, ValueError, RuntimeError, TypeError) as e:
        raise HwnasError(f"checkpoint {path} is corrupt or not safetensors: {one_line(e)}") from e
    if header.get("sha256") != _digest(tensors):
        raise HwnasError(f"checkpoint {path} is corrupt: tensor data does not match its digest")
    return header, saved, tensors


def _header_json(path: Path, header: Mapping[str, str]) -> dict[str, Any]:
    saved = {}
    for key in _HEADER_JSON:
        if key not in header:
            raise HwnasError(f"checkpoint {path} has a corrupt header: no {key!r} field")
        try:
            saved[key] = json.loads(header[key])
        except (json.JSONDecodeError, RecursionError) as e:
            reason = "nested too deeply" if isinstance(e, RecursionError) else one_line(e)
            raise HwnasError(f"checkpoint {path} has a corrupt header: {key}: {reason}") from None
    if not isinstance(saved["meta"], dict):
        raise HwnasError(f"checkpoint {path} has a corrupt header: meta is not a JSON object")
    for key, kinds in _META_TYPES.items():
        value = saved["meta"].get(key)
        if key in saved["meta"] and (not isinstance(value, kinds) or isinstance(value, bool)):
            names = " or ".join(k.__name__ for k in kinds)
            raise HwnasError(
                f"checkpoint {path} has a corrupt header: meta.{key} is {_short(value)}, "
                f"expected {names}"
            )
    for i, record in enumerate(saved["meta"].get("history") or ()):
        bad = not isinstance(record, dict) or any(
            not isinstance(record[k], int | float) or isinstance(record[k], bool)
            for k in _HISTORY_NUMBERS
            if k in record
        )
        if bad:
            raise HwnasError(
                f"checkpoint {path} has a corrupt header: meta.history[{i}] is not a record "
                "of numbers"
            )
    return saved


def _check_header(path: Path, header: Mapping[str, str], model: Family) -> dict[str, Any]:
    """The header's JSON fields, checked to describe ``model``'s space and config."""
    saved = _header_json(path, header)
    current = {"space": model.space().describe(), "config": model.config.to_dict()}
    for key, value in current.items():
        try:
            found = _first_difference(saved[key], json.loads(json.dumps(value)), key)
        except RecursionError:
            found = f"{key} nested too deeply"
        if found:
            raise HwnasError(f"checkpoint {path} does not fit this model: {found}")
    return saved


def checkpoint_digest(path: str | Path) -> str:
    """The digest of a checkpoint's tensors as its header records it, the tensors unread:
    what identifies the weights a run started from (call after ``load_checkpoint``)."""
    with safe_open(str(path), framework="pt") as f:
        return (f.metadata() or {}).get("sha256", "")


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
    header, saved, tensors = _open(path, model)
    meta = CheckpointMeta(saved["meta"], f"checkpoint {path}: meta")
    if isinstance(meta.get("history"), list):
        meta["history"] = [
            CheckpointMeta(r, f"checkpoint {path}: meta.history[{i}]")
            for i, r in enumerate(meta["history"])
        ]
    if optimizer is not None:
        state = _read_optimizer(path, header)
        try:
            optimizer.load_state_dict(state)
        except (ValueError, KeyError, TypeError, RuntimeError, IndexError) as e:
            side = optimizer_path(path)
            raise HwnasError(f"{side} does not fit the optimizer: {one_line(e)}") from e
    # The tensors read become the weights, with no second copy, unless an optimizer holds
    # the model's parameters or they live on another device: then they are copied in.
    on_cpu = all(t.device.type == "cpu" for t in model.state_dict().values())
    model.load_state_dict(tensors, assign=optimizer is None and on_cpu)
    return meta


def _read_optimizer(path: Path, header: Mapping[str, str]) -> dict[str, Any]:
    side = optimizer_path(path)
    if "optimizer_sha256" not in header:
        raise HwnasError(f"checkpoint {path} was saved without optimizer state")
    try:
        data = side.read_bytes()
    except OSError as e:
        raise HwnasError(f"optimizer state {side} cannot be read: {one_line(e)}") from e
    if hashlib.sha256(data).hexdigest() == header["optimizer_sha256"]:
        return optimizer_state(data, side)
    incoming = _incoming(side)  # killed after the checkpoint, before its state moved in
    if incoming.is_file():
        data = incoming.read_bytes()
        if hashlib.sha256(data).hexdigest() == header["optimizer_sha256"]:
            return optimizer_state(data, incoming)
    raise HwnasError(f"optimizer state {side} does not belong to checkpoint {path}")


# -- optimizer state: safetensors, its structure in the JSON header (nothing unpickled) ------
OPTIMIZER_FORMAT = "hwnas.optimizer/1"


def optimizer_bytes(state: Mapping[str, Any]) -> bytes:
    """An optimizer's ``state_dict()`` as safetensors: each tensor of the per-parameter
    state as ``state.<parameter>.<name>``, everything else (numbers, flags, the groups'
    settings) as JSON in the header."""
    tensors, plain = {}, {}
    for index, values in state["state"].items():
        for name, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{index}.{name}"] = value.detach().cpu().contiguous()
            else:
                plain[f"{index}.{name}"] = value
    header = {"format": OPTIMIZER_FORMAT, "param_groups": json.dumps(state["param_groups"]),
              "plain": json.dumps(plain)}  # fmt: skip
    return save(tensors, metadata=header)


def optimizer_state(data: bytes, where: Path | str) -> dict[str, Any]:
    """The ``state_dict()`` that ``optimizer_bytes`` wrote; a file in any other format, or
    damaged, is a one-line ``HwnasError`` naming ``where``."""
    try:
        tensors = load(data)  # checks the layout; then its header is well-formed JSON
        size = int.from_bytes(data[:8], "little")
        metadata = json.loads(data[8 : 8 + size]).get("__metadata__") or {}
    except Exception as e:  # noqa: BLE001 - SafetensorError and friends: a damaged file
        raise HwnasError(
            f"optimizer state {where} is corrupt or not safetensors (hwnas before 2026-12 "
            f"wrote a pickle here: start the run afresh): {one_line(e)}"
        ) from None
    if metadata.get("format") != OPTIMIZER_FORMAT:
        raise HwnasError(f"optimizer state {where} is not hwnas optimizer state")
    try:
        groups, plain = json.loads(metadata["param_groups"]), json.loads(metadata["plain"])
    except (KeyError, json.JSONDecodeError, RecursionError) as e:
        raise HwnasError(f"optimizer state {where} has a corrupt header: {one_line(e)}") from None
    if not isinstance(groups, list) or not isinstance(plain, dict):
        raise HwnasError(f"optimizer state {where} has a corrupt header")
    state: dict[int, dict[str, Any]] = {}
    entries = [(k.removeprefix("state."), v) for k, v in tensors.items()] + list(plain.items())
    for key, value in entries:
        index, _, name = key.partition(".")
        if not index.isdigit() or not name:
            raise HwnasError(f"optimizer state {where} has a corrupt entry {key!r}")
        state.setdefault(int(index), {})[name] = value
    return {"state": state, "param_groups": groups}
