"""InstaTune: a trained dense model made elastic while it is fine-tuned, then searched.

Training a super-network from scratch is the expensive part of weight-sharing NAS.
InstaTune (Sridhar et al., 2023) starts from a trained dense model instead, which is what
users have: ``hwnas train --dense`` (the family's largest network trained alone) or, for
the families that load them, a pretrained model. ``start_from_dense``:

1. loads the dense model as the super-network's largest sub-network: a checkpoint made
   with the same ``supernet`` config, or a pretrained model folder the family reads
   (``Family.from_pretrained``: a Hugging Face LLaMA folder for ``llama``); anything else
   is refused in one line;
2. keeps a frozen copy of it as the distillation teacher of every sub-network;
3. sorts heads, neurons and channels by their activations on calibration inputs
   (Minitron's activation-based importance: what the model uses on this data, where weight
   norms tell only what it could use), and lets depth drop first the layers that change the
   residual stream least (block influence, ShortGPT), where the family can
   (``Family.sort_by_importance``);

then ``run_job`` fine-tunes with the sandwich rule, searches and exports as ``hwnas run``.
A pretrained folder's text is read by its own tokenizer (``config_for_dense``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hwnas.config import RunConfig, validated
from hwnas.data.tokenizer import folder_tokenizer
from hwnas.errors import HwnasError
from hwnas.families import load_checkpoint
from hwnas.families.base import Family
from hwnas.families.checkpoint import checkpoint_digest
from hwnas.tasks.base import Task

IMPORTANCE = (
    "activations on the calibration inputs in the dense model: heads by the mean norm of "
    "their attention output, neurons and channels by mean absolute activation (Minitron); "
    "depth drops the layers of least block influence, 1 - cos(input, output) (ShortGPT)"
)


@dataclass(frozen=True)
class DenseStart:
    """What a run starting from a dense model adds: the super-network ``model`` holding it,
    the frozen ``teacher``, the ``identity`` a fine-tuning checkpoint must match, and the
    ``info`` its summary records."""

    model: Family
    teacher: nn.Module
    identity: dict[str, Any]
    info: dict[str, Any]


def config_for_dense(config: RunConfig, path: Path) -> RunConfig:
    """``config`` for a run from dense model ``path``: a pretrained folder with a
    ``tokenizer.json`` has its text read by that tokenizer, unless ``data.tokenizer`` names
    another; a folder without tokenizer files reads bytes."""
    if not path.is_dir() or config.data.tokenizer is not None or folder_tokenizer(path) is None:
        return config
    raw = config.model_dump(mode="json")
    raw["data"]["tokenizer"] = str(path)
    try:  # checked again: the tokenizer's vocabulary decides what the network reads
        return validated(raw)
    except HwnasError as exc:
        raise HwnasError(f"--model {path}: {exc}") from None


def start_from_dense(
    path: Path, model: Family, task: Task, calibration: torch.Tensor,
    overrides: Mapping[str, Any] | None = None,
) -> DenseStart:  # fmt: skip
    """Load the dense model ``path`` (into ``model``, for a checkpoint; a pretrained folder
    builds its own network, ``overrides`` choosing the space) and sort it by importance on
    ``calibration`` (inputs of the task's calibration split)."""
    if path.is_dir():
        model = pretrained_network(path, model, overrides)
        digest, trained_dense = folder_digest(path), True
    else:
        meta = load_checkpoint(path, model)
        digest = checkpoint_digest(path)
        trained_dense = bool(dict(meta.get("train") or {}).get("dense", False))
    model.eval()
    teacher = model.extract(model.teacher_arch()).eval()
    dense_metrics = task.quality(teacher, "val")
    model.sort_by_importance(calibration)
    info = {
        "model": str(path),
        "trained_dense": trained_dense,
        "dense_val_metrics": dense_metrics,
        "importance": IMPORTANCE,
        "calibration_inputs": len(calibration),
    }
    return DenseStart(model, teacher, {"instatune": digest}, info)


def pretrained_network(folder: Path, model: Family, overrides: Mapping[str, Any] | None) -> Family:
    """The family's network of ``folder``, checked to take the task's inputs as ``model``
    (built for the task) does."""
    spec = model.input_spec()
    net = type(model).from_pretrained(folder, spec.shape[0], overrides)
    if net.input_spec() != spec:
        raise HwnasError(
            f"--model {folder}: takes {net.input_spec().vocab_size} token ids, this task gives "
            f"{spec.vocab_size} (the ids of data.tokenizer, else of the folder's own "
            "tokenizer.json, else bytes)"
        )
    return net


def folder_digest(folder: Path) -> str:
    """Identifies a pretrained folder without reading its weights (gigabytes, for a large
    model): its config file's bytes and each weight file's name and size."""
    h = hashlib.sha256((folder / "config.json").read_bytes())
    for file in sorted(folder.glob("*.safetensors")):
        h.update(f"{file.name}:{file.stat().st_size}".encode())
    return h.hexdigest()
