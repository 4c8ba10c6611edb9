"""Causal language modelling: predict every next token of a window of source code, the
tokens being bytes or the ids of a model's own tokenizer (``data.tokenizer``).

Quality is bits per byte (the cross-entropy in bits of every predicted token, summed, over
the bytes of text those tokens stand for) and next-token accuracy, both on fixed windows
evenly spaced over a split, so every sub-network is scored on the very same text. Bits per
byte stays comparable between models that read text differently: a tokenizer that packs
four bytes into a token predicts fewer, harder tokens, and is charged for all four bytes.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hwnas.data.text import TextData
from hwnas.data.tokenizer import MAX_TOKENIZER_BYTES, TOKENIZER_FILE, load_tokenizer
from hwnas.errors import HwnasError
from hwnas.files import read_limited
from hwnas.metrics import Metric
from hwnas.tasks.base import InputSpec, PredictsLastDim, Split, TaskSpec

VOCABULARY = 256
_CALIBRATION_STREAM = 0xCA1  # keeps the calibration draw apart from anything else seeded


class LanguageModel(PredictsLastDim):
    """Inputs: ``context`` token ids; targets: the same window shifted by one token."""

    quality_metrics = (
        Metric("bits_per_byte", "bits/byte", "cross-entropy of the next token, in bits per "
               "byte of text"),
        Metric("next_token_accuracy", "%", "share of next tokens (bytes, without a "
               "tokenizer) predicted top-1"),
    )  # fmt: skip
    default_objective = "bits_per_byte:min"
    default_label_smoothing = 0.0

    def __init__(self, data: TextData) -> None:
        self.data = data
        self.name = data.name
        self.context = data.context
        self.spec = _spec(data.context, data.vocab_size)

    @classmethod
    def expected_spec(cls, options: Mapping[str, Any]) -> TaskSpec:
        """The spec once text loaded with ``options`` (the loader's defaults filled in) is
        read: its context and its tokenizer's vocabulary decide it (the tokenizer file is
        read, the corpus is not), so a config is checked before loading."""
        tokenizer = options.get("tokenizer")
        vocab = VOCABULARY if tokenizer is None else load_tokenizer(tokenizer).vocab_size
        return _spec(options["context"], vocab)

    def identity(self) -> dict[str, Any]:
        identity = {"task": "language-model", "data": self.name, "context": self.context,
                    "corpus": self.data.fingerprint}  # fmt: skip
        if self.data.tokenizer is not None:  # weights trained on other ids do not fit
            tokenizer = self.data.tokenizer
            identity["tokenizer"] = {"sha256": tokenizer["sha256"],
                                     "vocab_size": tokenizer["vocab_size"]}  # fmt: skip
        return identity

    @property
    def _unit(self) -> str:
        return "bytes" if self.data.tokenizer is None else "tokens"

    def split_sizes(self) -> dict[str, dict[str, Any]]:
        files, text_bytes = self.data.files, self.data.byte_counts()
        sizes = {}
        for name in ("train", "val", "test"):
            sizes[name] = {"size": len(self.data.split(name)), "unit": self._unit,
                           "files": files.get(name, 0)}  # fmt: skip
            if self.data.tokenizer is not None:
                sizes[name]["bytes"] = text_bytes[name]
            if name != "train":
                windows = len(self._eval_starts(name))
                sizes[name]["evaluated"] = f"{windows} windows of {self.context} {self._unit}"
        return sizes

    def preprocessing(self) -> dict[str, Any]:
        """Raw bytes are the tokens, or the ids of the tokenizer named (its file's digest
        says which); ``context`` of them per input; the output is next-token logits at
        every position."""
        vocab, tokenizer = self.spec.input.vocab_size, self.data.tokenizer
        described = {"vocabulary": "bytes 0-255"} if tokenizer is None else {
            "vocabulary": f"the ids of the tokenizer beside the models, {TOKENIZER_FILE}",
            "tokenizer": tokenizer}  # fmt: skip
        return {
            "input": "tokens",
            "dtype": "int64",
            **described,
            "vocab_size": vocab,
            "context": self.context,
            "output": f"logits (batch, context, {vocab}): the next token at every position",
        }

    def deployment_files(self) -> dict[str, bytes]:
        """The tokenizer, as the run read it (its digest checked again): the exported
        models take its ids and nothing else."""
        tokenizer = self.data.tokenizer
        if tokenizer is None:
            return {}
        path = Path(tokenizer["path"])
        data = read_limited(path, "tokenizer", MAX_TOKENIZER_BYTES)
        if hashlib.sha256(data).hexdigest() != tokenizer["sha256"]:
            raise HwnasError(f"tokenizer {path}: changed during the run; export from a run "
                             "that reads the tokenizer the models were trained on")  # fmt: skip
        return {TOKENIZER_FILE: data}

    def _offsets(self, starts: torch.Tensor) -> torch.Tensor:
        return starts[:, None] + torch.arange(self.context + 1)

    def _windows(self, split: Split, starts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        window = self.data.split(split)[self._offsets(starts)].long()
        return window[:, :-1], window[:, 1:]

    def _target_bytes(self, split: Split, starts: torch.Tensor, targets: torch.Tensor) -> int:
        """Bytes of text the targets of windows ``starts`` stand for."""
        if self.data.token_bytes is None:
            return targets.numel()
        return int(self.data.token_bytes[split][self._offsets(starts)[:, 1:]].sum())

    def _eval_starts(self, split: Split) -> torch.Tensor:
        last = len(self.data.split(split)) - self.context - 1
        count = min(self.data.eval_windows, last + 1)
        return torch.from_numpy(np.linspace(0, last, count).round().astype(np.int64))

    def steps_per_epoch(self, batch_size: int) -> int:
        return math.ceil(self.data.windows_per_epoch / batch_size)

    def train_batches(
        self, batch_size: int, generator: torch.Generator
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """``windows_per_epoch`` windows starting at uniformly drawn tokens of the train
        split."""
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
        nats, right, predicted, text_bytes = 0.0, 0, 0, 0
        for begin in range(0, len(starts), batch_size):
            batch = starts[begin : begin + batch_size]
            x, y = self._windows(split, batch)
            logits = module(x)
            nats += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1),
                                          reduction="sum"))  # fmt: skip
            hits, count = self.correct(logits, y)
            right, predicted = right + hits, predicted + count
            text_bytes += self._target_bytes(split, batch, y)
        return {"bits_per_byte": nats / max(text_bytes, 1) / math.log(2),
                "next_token_accuracy": 100.0 * right / predicted}  # fmt: skip


def _spec(context: int, vocab_size: int) -> TaskSpec:
    return TaskSpec("language-model", InputSpec("tokens", (context,), vocab_size), vocab_size)
