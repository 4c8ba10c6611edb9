"""Causal language modelling on bytes: predict every next byte of a window of source code.

Quality is bits per byte (the cross-entropy in bits, averaged over every predicted byte) and
next-byte accuracy, both on fixed windows evenly spaced over a split, so every sub-network is
scored on the very same bytes. Bits per byte stays comparable between models that read text
differently, which a later tokenised task needs.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hwnas.data.text import TextData
from hwnas.metrics import Metric
from hwnas.tasks.base import InputSpec, PredictsLastDim, Split, TaskSpec

VOCABULARY = 256
_CALIBRATION_STREAM = 0xCA1  # keeps the calibration draw apart from anything else seeded


class ByteLanguageModel(PredictsLastDim):
    """Inputs: ``context`` byte ids; targets: the same window shifted by one byte."""

    quality_metrics = (
        Metric("bits_per_byte", "bits/byte", "cross-entropy of the next byte, in bits"),
        Metric("next_byte_accuracy", "%", "share of next bytes predicted top-1"),
    )
    default_objective = "bits_per_byte:min"
    default_label_smoothing = 0.0

    def __init__(self, data: TextData) -> None:
        self.data = data
        self.name = data.name
        self.context = data.context
        self.spec = TaskSpec(
            "language-model", InputSpec("tokens", (data.context,), VOCABULARY), VOCABULARY
        )

    @classmethod
    def expected_spec(cls, options: Mapping[str, Any]) -> TaskSpec:
        """The spec once text loaded with ``options`` (the loader's defaults filled in) is
        read: its context decides it, so a config is checked before loading."""
        context = options["context"]
        return TaskSpec("language-model", InputSpec("tokens", (context,), VOCABULARY), VOCABULARY)

    def identity(self) -> dict[str, Any]:
        return {"task": "language-model", "data": self.name, "context": self.context,
                "corpus": self.data.fingerprint}  # fmt: skip

    def split_sizes(self) -> dict[str, dict[str, Any]]:
        files = self.data.files
        sizes = {}
        for name in ("train", "val", "test"):
            sizes[name] = {"size": len(self.data.split(name)), "unit": "bytes",
                           "files": files.get(name, 0)}  # fmt: skip
            if name != "train":
                windows = len(self._eval_starts(name))
                sizes[name]["evaluated"] = f"{windows} windows of {self.context} bytes"
        return sizes

    def preprocessing(self) -> dict[str, Any]:
        """Raw bytes are the tokens: no tokenizer, ``context`` of them per input; the output
        is next-byte logits at every position."""
        return {
            "input": "tokens",
            "dtype": "int64",
            "vocabulary": "bytes 0-255",
            "vocab_size": VOCABULARY,
            "context": self.context,
            "output": "logits (batch, context, 256): the next byte at every position",
        }

    def _windows(self, split: Split, starts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        offsets = starts[:, None] + torch.arange(self.context + 1)
        window = self.data.split(split)[offsets].long()
        return window[:, :-1], window[:, 1:]

    def _eval_starts(self, split: Split) -> torch.Tensor:
        last = len(self.data.split(split)) - self.context - 1
        count = min(self.data.eval_windows, last + 1)
        return torch.from_numpy(np.linspace(0, last, count).round().astype(np.int64))

    def steps_per_epoch(self, batch_size: int) -> int:
        return math.ceil(self.data.windows_per_epoch / batch_size)

    def train_batches(
        self, batch_size: int, generator: torch.Generator
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """``windows_per_epoch`` windows starting at uniformly drawn bytes of the train split."""
        last = len(self.data.train) - self.context - 1
        starts = torch.randint(0, last + 1, (self.data.windows_per_epoch,), generator=generator)
        for step in range(self.steps_per_epoch(batch_size)):
            yield self._windows("train", starts[step * batch_size : (step + 1) * batch_size])

    def calibration_inputs(self, n: int, seed: int) -> torch.Tensor:
        last = len(self.data.train) - self.context - 1
        rng = np.random.default_rng([seed, _CALIBRATION_STREAM])
        starts = torch.from_numpy(rng.integers(0, last + 1, size=n))
        return self._windows("train", starts)[0]

    @torch.no_grad()
    def quality(self, module: nn.Module, split: Split = "val", batch_size: int = 32) -> dict:
        module.eval()
        starts = self._eval_starts(split)
        nats, right, predicted = 0.0, 0, 0
        for begin in range(0, len(starts), batch_size):
            x, y = self._windows(split, starts[begin : begin + batch_size])
            logits = module(x)
            nats += float(F.cross_entropy(logits.reshape(-1, VOCABULARY), y.reshape(-1),
                                          reduction="sum"))  # fmt: skip
            hits, count = self.correct(logits, y)
            right, predicted = right + hits, predicted + count
        return {"bits_per_byte": nats / predicted / math.log(2),
                "next_byte_accuracy": 100.0 * right / predicted}  # fmt: skip
