"""Small made-up problems for tests: a product-space table with two conflicting metrics."""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from hwnas.benchmarks.table import TableBenchmark
from hwnas.data.augment import Augment
from hwnas.data.image_data import split_and_assemble
from hwnas.data.text import TextData
from hwnas.families.mobilenet import MobileNetConfig
from hwnas.hardware.settings import LatencySettings
from hwnas.pareto import Objective
from hwnas.tasks import ImageClassification, LanguageModel
from hwnas.tasks.base import InputSpec, TaskSpec

OBJECTIVES = [Objective("acc", "max"), Objective("lat", "min")]
FAST_LATENCY = LatencySettings(warmup=1, min_runs=3, max_runs=20, max_seconds=0.01)
"""Timing settings for tests that check how latency flows, not what it is: a few runs each."""
FAST_LATENCY_CONFIG = json.dumps(FAST_LATENCY.model_dump(exclude_defaults=True))
"""The same as a config's ``latency`` value (JSON is YAML)."""
COSTLY_SEARCHERS = {"optuna-gp": 14}
"""Searchers whose every ask refits a model for about a second: tests run over every
searcher give them this budget (past their 10 random startup trials, so the model is
exercised) and fewer kills, keeping ``make test`` within its time."""


def budget_for(searcher: str, budget: int) -> int:
    return min(budget, COSTLY_SEARCHERS.get(searcher, budget))


def hwnas(*args, cwd=None) -> subprocess.CompletedProcess:
    """Run the command line in a fresh interpreter, as a user would."""
    return subprocess.run([sys.executable, "-m", "hwnas.cli", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd)  # fmt: skip


def cli(*args) -> subprocess.CompletedProcess:
    """The command line's ``main`` in this process: the exit code, stdout and stderr a user
    would see, without the seconds a fresh interpreter spends importing torch. For inputs
    refused before any work; ``hwnas`` runs the real thing."""
    from hwnas.cli import main

    out, err, code = io.StringIO(), io.StringIO(), 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main([str(a) for a in args])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def image_spec(channels: int = 3, classes: int = 10, size: int = 32) -> TaskSpec:
    """What a classification task of ``channels`` x ``size`` x ``size`` images tells a family."""
    return TaskSpec("classification", InputSpec("image", (channels, size, size)), classes)


def token_spec(context: int = 16) -> TaskSpec:
    """What a byte-level language-model task with ``context`` bytes tells a family."""
    return TaskSpec("language-model", InputSpec("tokens", (context,), 256), 256)


def random_image_task(
    n: int = 48, channels: int = 1, size: int = 16, classes: int = 3, seed: int = 0
) -> ImageClassification:
    """Noisy images whose brightness tells the class (labels in turn): learnable in steps."""
    images = torch.rand(n, channels, size, size, generator=torch.Generator().manual_seed(seed))
    labels = np.arange(n) % classes
    images += torch.as_tensor(labels, dtype=torch.float32)[:, None, None, None] / classes
    names = tuple(map(str, range(classes)))
    augment = Augment(pad=1, hflip=False)
    data = split_and_assemble("random", images, labels, seed, 0.2, 0.2, names, augment)
    return ImageClassification(data)


def python_like(lines: int, seed: int = 0) -> bytes:
    """Source-like text: repetitive enough for a tiny model to learn within a few steps."""
    rng = np.random.default_rng(seed)
    names = ["x", "y", "value", "total", "item"]
    out = []
    for _ in range(lines):
        a, b = rng.choice(names, 2)
        out.append(f"def f_{rng.integers(10)}({a}):\n    return {a} + {b} * {rng.integers(10)}\n")
    return "".join(out).encode()


def random_text_task(context: int = 16, seed: int = 0) -> LanguageModel:
    """A language-model task on ``python_like`` text, without files."""
    sizes = (("train", 60), ("val", 10), ("test", 10))
    streams = {split: torch.frombuffer(bytearray(python_like(n, seed + i)), dtype=torch.uint8)
               for i, (split, n) in enumerate(sizes)}  # fmt: skip
    data = TextData("python-like", "", **streams, files={s: 1 for s in streams}, context=context,
                    windows_per_epoch=32, eval_windows=8, fingerprint="test")  # fmt: skip
    return LanguageModel(data)


def tiny_tokenizer(path: Path, texts: list[str], vocab: int = 300, byte_level: bool = True):
    """A BPE tokenizer trained on ``texts``, saved as ``path`` (a ``tokenizer.json``): byte
    level like GPT-2's and LLaMA 3's, or splitting on whitespace, which it drops."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    if byte_level:
        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        alphabet = pre_tokenizers.ByteLevel.alphabet()
    else:
        tokenizer = Tokenizer(models.BPE(unk_token="[UNK]"))
        tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
        alphabet = []
    trainer = trainers.BpeTrainer(vocab_size=vocab, initial_alphabet=alphabet,
                                  special_tokens=["[UNK]"], show_progress=False)  # fmt: skip
    tokenizer.train_from_iterator(texts, trainer)
    tokenizer.save(str(path))
    return path


def toy_rows(seed: int = 0, drop: int = 0) -> list[dict[str, str]]:
    """4 x 4 x 3 x 3 = 144 archs; accuracy and latency both grow with size, plus noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for width, depth, op, kernel in itertools.product(
        [8, 16, 32, 64], [1, 2, 3, 4], ["conv", "sep", "pool"], [3, 5, 7]
    ):
        size = np.log2(width) * depth * (1.5 if op == "conv" else 1.0) * kernel / 3
        acc = 100 - 40 / (1 + size) + rng.normal(0, 0.5)
        lat = size * (1.2 if op == "sep" else 1.0) + rng.normal(0, 0.2) + 1
        rows.append(
            {
                "width": str(width),
                "depth": str(depth),
                "op": op,
                "kernel": str(kernel),
                "acc": f"{acc:.4f}",
                "lat": f"{lat:.4f}",
            }
        )
    order = rng.permutation(len(rows))
    return [rows[i] for i in sorted(order[drop:])]


def toy_bench(seed: int = 0, drop: int = 0) -> TableBenchmark:
    return TableBenchmark(
        toy_rows(seed, drop), ["width", "depth", "op", "kernel"], {"acc": "acc", "lat": "lat"}
    )


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def kill_when_stored(job: subprocess.Popen, store_path: Path, run_id: str, count: int) -> None:
    """SIGKILL ``job`` once its store holds ``count`` evaluations of ``run_id`` (or at 4 min)."""
    from hwnas.store import Store

    try:
        deadline = time.time() + 240
        while time.time() < deadline and job.poll() is None:
            if store_path.exists() and store_path.stat().st_size:  # not while being created
                with Store(store_path) as store:
                    if store.count(run_id) >= count:
                        break
            time.sleep(0.05)
        job.send_signal(signal.SIGKILL)
    finally:
        job.wait()


# Odd shapes on purpose: three stages, strides off the usual pattern, an odd resolution.
ODD_CONFIG = MobileNetConfig(
    widths=(8, 16, 24),
    strides=(2, 1, 2),
    se_stages=(True, False, True),
    hswish_stages=(True, True, False),
    depths=(1, 3),
    kernels=(3, 7),
    resolutions=(17, 32),
    se_reduction=8,
)


class _ToyMetrics:
    """Some of the toy table's metrics, ``delay_s`` late; ``die_once``: a marker file whose
    absence makes the first evaluation anywhere kill its own process (a worker lost
    mid-task), after creating it."""

    def __init__(self, bench: TableBenchmark, names: tuple[str, ...], delay_s: float,
                 die_once: str | None, log: str | None = None) -> None:  # fmt: skip
        self.bench, self.metrics, self.delay_s, self.die_once = bench, names, delay_s, die_once
        self.log = log

    def evaluate(self, arch):
        if self.log is not None:  # every evaluation started, from whichever process
            with open(self.log, "a") as handle:
                handle.write(arch.key + "\n")
        if self.die_once is not None and not Path(self.die_once).exists():
            Path(self.die_once).touch()
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(self.delay_s)
        return {n: v for n, v in self.bench.evaluate(arch).items() if n in self.metrics}


def toy_workload(context):
    """The ``helpers:toy_workload`` workload: the toy table as one evaluator (``split``
    false) or as ``quality`` (acc) and ``latency`` (lat), as a device-timed run has them;
    ``log``: a file each evaluation started appends its arch key to."""
    from hwnas.execute import SINGLE_PART
    from hwnas.execute.base import Built

    bench = toy_bench()
    delay, die = float(context.get("delay_s", 0)), context.get("die_once")
    if not context.get("split"):
        return Built(bench.space, {SINGLE_PART.name: _ToyMetrics(
            bench, ("acc", "lat"), delay, die, context.get("log"))})  # fmt: skip
    return Built(bench.space, {"quality": _ToyMetrics(bench, ("acc",), delay, die),
                               "latency": _ToyMetrics(bench, ("lat",), delay, None)})  # fmt: skip
