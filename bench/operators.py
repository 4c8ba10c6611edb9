"""Operator study on the byte-level language model (issue 14 point 3).

Fixed networks of one shape (by default 3 layers, width 128, 4 heads of 32) that differ in
one operator, each a singleton space of the elastic transformer, so every number comes from
the product's own network, trainer, task and timer:

- **attention** (MLP feed-forward): ``softmax``, ``sigmoid``, ``linear``. They share the
  Q/K/V/O projections, so their parameters are equal by construction.
- **feed-forward** (softmax attention): ``mlp``, ``glu``, ``moe``. A GLU holds three
  matrices to the MLP's two, so its hidden size is 2/3 of the MLP's (``--mlp-ratio`` 6:
  GLU ratio 4, exactly equal). A mixture of ``--experts`` experts splits the MLP's neurons
  (plus a router of experts x width per layer): equal total parameters, and per token only
  the ``--top-k`` chosen experts' share is active.
- **dense twins**: for each top-k, a dense MLP whose hidden size is top-k/experts of the
  MLP's, so its parameters equal the mixture's *active* ones (the router aside): what a
  mixture of experts costs per token against a dense layer of the same active weights.

Every variant is trained alone (``train.dense``, which trains the largest network of the
space, here the only one) on the task of ``examples/lm.yaml`` (the standard library, byte
level, context 128; ``--train-context`` trains at another) for the same budget and seed, so
each sees the same windows in the same order; quality is bits per byte on the validation
windows (``Task.quality(..., "val")``). Latency is ONNX Runtime at batch 1 on one thread at
each of ``--contexts``: weights do not change latency, so an untrained network of the same
shape built for each context serves (``max_context`` set to it: the family refuses a
context longer than its position table; linear attention keeps its chunk of
``linear_chunk`` bytes, 32, at every context, padding the last chunk when the context is no
multiple of it, so only the number of chunks grows).
At one context every variant is timed in the same interleaved rounds (``time_rounds``)
with the softmax/MLP network as the reference timed between them, and compared by the
ratios to it, so drift of the machine lands on every variant alike. Derived: the context
from which linear attention is faster than softmax (log-log interpolation between the
measured contexts around it; the default list starts at 32, one chunk, where linear
attention is quadratic within its chunk plus its prefix sums), and each mixture's latency
per token and per active parameter against its dense twin and against the dense MLP of
equal total parameters.

    .venv/bin/python bench/operators.py --out runs/bench14-operators

Expected runtime on the 2-core VM: 20-25 minutes. Training: 8 networks of 2 epochs of
2,048 windows, 30-60 s each (90-180 windows/s on one thread, measured). Timing: 7 contexts
x (8 variants x 5 rounds + 11 timings of the reference), each timing its warm-up and then
up to ``latency.max_seconds`` (2 s) or 10 runs, about 15 minutes, a third of it at 2,048
bytes (softmax about 0.2 s a call there, by its MACs). Two epochs rank the operators early
in training; ``--epochs 7`` (the main job's budget) takes 3.5x as long to train.
Resumable: a training whose ``OUT/train/<variant>/result.json`` exists with the same
settings is skipped (an interrupted one continues from its last epoch), and so is a context
whose ``OUT/latency/context-<n>.json`` exists with the same variants and timing settings
(``--retime`` times every context again). Writes ``OUT/results.json``; prints the tables as
each stage ends.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hwnas.config import RunConfig, load_config, with_overrides
from hwnas.families import ElasticTransformer, load_checkpoint
from hwnas.files import write_atomic
from hwnas.hardware.measure import environment, prepare, time_rounds
from hwnas.hardware.settings import LatencySettings
from hwnas.run import CHECKPOINT, train_job
from hwnas.tasks import expected_spec, load_task
from hwnas.tasks.base import InputSpec, Task, TaskSpec

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "lm.yaml"
REFERENCE = "softmax-mlp"
"""The baseline every variant is compared to, and the reference timed between the others."""


@dataclass(frozen=True)
class Shape:
    """What every variant shares: the residual stream, the attention's heads, the depth."""

    depth: int
    width: int
    heads: int
    head_dim: int
    experts: int
    linear_chunk: int


@dataclass(frozen=True)
class Variant:
    """One fixed network: its operators and feed-forward size (``mlp_ratio`` x width).

    ``top_k``: experts per token (a mixture only). ``twin_of``: the mixtures whose active
    parameters this dense MLP matches. ``studies``: the comparisons it takes part in."""

    name: str
    attention: str
    feed_forward: str
    mlp_ratio: int
    top_k: int | None = None
    twin_of: tuple[str, ...] = ()
    studies: tuple[str, ...] = ()


def nearest_ratio(exact: float) -> int:
    """The config's feed-forward sizes are whole multiples of the width."""
    return max(1, round(exact))


def make_variants(shape: Shape, mlp_ratio: int, top_ks: Sequence[int]) -> list[Variant]:
    """The reference, the other attention kinds, the GLU and the mixtures at the
    reference's parameters, and one dense twin per distinct active size of a mixture."""
    if shape.width * mlp_ratio % shape.experts:
        raise SystemExit(f"--mlp-ratio {mlp_ratio} x --width {shape.width} neurons do not "
                         f"split into --experts {shape.experts}")  # fmt: skip
    if max(top_ks) > shape.experts:
        raise SystemExit(f"--top-k {max(top_ks)} exceeds --experts {shape.experts}")
    glu_ratio = nearest_ratio(2 * mlp_ratio / 3)  # three matrices of 2/3 hold as many as two
    variants = [
        Variant(REFERENCE, "softmax", "mlp", mlp_ratio, studies=("attention", "feed-forward")),
        Variant("sigmoid-mlp", "sigmoid", "mlp", mlp_ratio, studies=("attention",)),
        Variant("linear-mlp", "linear", "mlp", mlp_ratio, studies=("attention",)),
        Variant("softmax-glu", "softmax", "glu", glu_ratio, studies=("feed-forward",)),
    ]
    twins: dict[int, list[str]] = {}
    for k in top_ks:
        name = f"softmax-moe-top{k}"
        variants.append(
            Variant(name, "softmax", "moe", mlp_ratio, k, studies=("feed-forward", "moe"))
        )
        twins.setdefault(nearest_ratio(mlp_ratio * k / shape.experts), []).append(name)
    for ratio, mixtures in sorted(twins.items()):
        if ratio == mlp_ratio:  # top-k = experts: the reference is its own twin
            variants[0] = Variant(**{**asdict(variants[0]), "twin_of": tuple(mixtures),
                                     "studies": (*variants[0].studies, "moe")})  # fmt: skip
            continue
        variants.append(Variant(f"softmax-mlp-r{ratio}", "softmax", "mlp", ratio,
                                twin_of=tuple(mixtures), studies=("moe",)))  # fmt: skip
    return variants


def twin_of(mixture: Variant, variants: Sequence[Variant]) -> Variant:
    return next(v for v in variants if mixture.name in v.twin_of)


def overrides(variant: Variant, shape: Shape, context: int) -> dict[str, Any]:
    """``supernet.overrides`` of a space holding ``variant`` alone, its position table
    ``context`` long (the family refuses a task context beyond ``max_context``)."""
    return {
        "depths": [shape.depth],
        "widths": [shape.width],
        "heads": [shape.heads],
        "head_dim": shape.head_dim,
        "mlp_ratios": [variant.mlp_ratio],
        "attentions": [variant.attention],
        "feed_forwards": [variant.feed_forward],
        "moe_top_k": [variant.top_k or 1],
        "experts": shape.experts,
        "linear_chunk": shape.linear_chunk,
        "max_context": context,
    }


def token_spec(context: int, vocab: int) -> TaskSpec:
    """The language model's spec at another context than the task's (for timing)."""
    return TaskSpec("language-model", InputSpec("tokens", (context,), vocab), vocab)


def build(variant: Variant, shape: Shape, spec: TaskSpec) -> ElasticTransformer:
    context = spec.input.shape[0]
    return ElasticTransformer.for_task(overrides(variant, shape, context), spec)


# -- parameters --------------------------------------------------------------------------
def parameter_counts(variant: Variant, shape: Shape, spec: TaskSpec) -> dict[str, int]:
    """Parameters of the extracted network (``Family.cost``, checked against the module's
    own count), its feed-forward's per layer, and those a token uses: a mixture's idle
    experts excluded, everything else (embedding, attention, norms, router) counted."""
    model = build(variant, shape, spec)
    arch = model.teacher_arch()
    cost = model.cost(arch)
    held = sum(p.numel() for p in model.extract(arch).parameters())
    if held != cost.params:
        raise RuntimeError(f"{variant.name}: cost() says {cost.params:,} parameters, the "
                           f"extracted module holds {held:,}")  # fmt: skip
    hidden = shape.width * variant.mlp_ratio
    matrices = {"mlp": 2, "glu": 3, "moe": 2}[variant.feed_forward]
    ffn = matrices * shape.width * hidden
    idle = 0
    if variant.feed_forward == "moe":
        ffn += shape.experts * shape.width  # the router
        idle = shape.depth * 2 * shape.width * hidden * (shape.experts - variant.top_k)
        idle //= shape.experts
    return {"params": cost.params, "active_params": cost.params - idle,
            "ffn_params_per_layer": ffn, "hidden": hidden, "macs": cost.macs}  # fmt: skip


def equality_notes(
    variants: Sequence[Variant], shape: Shape, counts: dict[str, dict[str, int]]
) -> list[str]:
    """Where the whole-number feed-forward ratios left parameters unequal, and by how much:
    each variant against the reference, each dense twin against its mixture's active
    parameters less the router (which a dense layer has no use for)."""
    notes = []
    reference = counts[REFERENCE]["params"]
    router = shape.depth * shape.experts * shape.width
    for v in variants:
        if v.name == REFERENCE or (v.feed_forward != "moe" and not v.twin_of):
            gap = counts[v.name]["params"] / reference - 1
            if gap:
                notes.append(f"{v.name}: {gap:+.2%} parameters against {REFERENCE} "
                             "(feed-forward sizes are whole multiples of the width)")  # fmt: skip
        if v.feed_forward == "moe":
            twin = twin_of(v, variants)
            gap = counts[twin.name]["params"] / (counts[v.name]["active_params"] - router) - 1
            if gap:
                notes.append(f"{twin.name}: {gap:+.2%} parameters against the active ones of "
                             f"{v.name} less its router (no whole ratio is top-k/experts of "
                             f"{REFERENCE}'s)")  # fmt: skip
    return notes


# -- training ----------------------------------------------------------------------------
def train_config(
    base: RunConfig, variant: Variant, shape: Shape, args: argparse.Namespace
) -> RunConfig:
    """The job of ``base`` with ``variant`` as its whole space, trained alone."""
    context = expected_spec(base.data.name, base.data.options()).input.shape[0]
    changes = {"supernet.name": "transformer",
               "supernet.overrides": overrides(variant, shape, context),
               "train.dense": True, "train.progressive": False, "train.random_subnets": 0,
               "train.epochs": args.epochs, "train.threads": args.train_threads,
               "train.device": args.train_device}  # fmt: skip
    return with_overrides(base, changes)


def train_variant(
    base: RunConfig, variant: Variant, shape: Shape, args: argparse.Namespace,
    task: Task | None,
) -> tuple[dict[str, Any], Task | None]:  # fmt: skip
    """Train ``variant`` alone with ``hwnas.run.train_job`` into ``OUT/train/<name>`` and score
    it on the validation windows; a finished result with the same settings is read back.
    Returns the result and the task (loaded once, when first needed, for every score)."""
    config = train_config(base, variant, shape, args)
    identity = config.model_dump(mode="json")
    folder = args.out / "train" / variant.name
    result_path = folder / "result.json"
    if result_path.exists():
        saved = json.loads(result_path.read_text())
        if saved.get("identity") == identity:
            return {**saved, "resumed": True}, task
        raise SystemExit(f"{result_path}: trained with other settings; pick another --out")
    print(f"training {variant.name} ...", flush=True)
    started = time.perf_counter()
    trained = train_job(config, folder, resume=(folder / CHECKPOINT).exists())
    seconds = time.perf_counter() - started
    if task is None:
        data = config.data
        task = load_task(data.name, data.path, config.seed, **data.options())
    model = ElasticTransformer.for_task(config.supernet.overrides, task.spec)
    load_checkpoint(folder / CHECKPOINT, model)
    model.eval()
    with torch.no_grad():
        quality = task.quality(model.extract(model.teacher_arch()), "val")
    history = [dict(r) for r in trained["training"]]
    result = {"identity": identity, "quality": quality, "history": history,
              "train_seconds": seconds,
              "samples_per_second": float(np.mean([r["samples_per_second"] for r in history]))
              if history else None}  # fmt: skip
    write_atomic(result_path, json.dumps(result, indent=2))
    return result, task


# -- latency -----------------------------------------------------------------------------
def time_context(
    context: int, variants: Sequence[Variant], shape: Shape, vocab: int,
    settings: LatencySettings, rounds: int, seed: int,
) -> dict[str, Any]:  # fmt: skip
    """Every variant at ``context``, untrained, timed in the same interleaved rounds with
    the reference timed between them; each call's figures are medians over the rounds."""
    spec = token_spec(context, vocab)
    example = spec.input.example(settings.batch_size, torch.Generator().manual_seed(seed))
    calls, macs = [], {}
    torch.manual_seed(seed)
    for v in variants:
        model = build(v, shape, spec).eval()
        arch = model.teacher_arch()
        macs[v.name] = model.cost(arch).macs
        calls.append(prepare(model.extract(arch), example, settings))
    reference = calls[[v.name for v in variants].index(REFERENCE)]
    started = time.perf_counter()
    timed = time_rounds(calls, settings, rounds, seed, reference=reference)
    steady = timed.at_reference_speed()
    figures = {}
    for i, v in enumerate(variants):
        figures[v.name] = {
            "ms": float(np.median(steady[:, i])),
            "ms_as_timed": float(np.median(timed.ms[:, i])),
            "relative": float(np.median(timed.relative[:, i])),
            "rounds_ms": timed.ms[:, i].tolist(),
            "rounds_relative": timed.relative[:, i].tolist(),
            "iqr_ms": float(np.median(timed.iqr_ms[:, i])),
            "runs": int(timed.runs[:, i].sum()),
            "macs": macs[v.name],
        }
    return {"context": context, "timed_at": time.time(), "seconds": time.perf_counter() - started,
            "reference_ms": timed.reference_ms.tolist(), "variants": figures}  # fmt: skip


def latency_identity(
    variants: Sequence[Variant], shape: Shape, settings: LatencySettings, rounds: int, seed: int
) -> dict[str, Any]:
    """What a saved context's timings depend on: a change re-times it. As JSON reads it
    back (lists for tuples), so a saved identity compares equal."""
    identity = {"variants": [asdict(v) for v in variants], "shape": asdict(shape), "seed": seed,
                "settings": settings.model_dump(mode="json"), "rounds": rounds}  # fmt: skip
    return json.loads(json.dumps(identity))


# -- derived figures ---------------------------------------------------------------------
def crossover(contexts: Sequence[int], ratios: Sequence[float]) -> dict[str, Any]:
    """The context from which ``ratios`` (a variant's latency over another's) stay below 1:
    after the longest measured context where it is not, interpolated linearly in log ratio
    against log context up to the next (both costs are near power laws of the context).
    Taking the last crossing, not the first, keeps a noisy short context from placing it."""
    pairs = sorted(zip(contexts, ratios, strict=True))
    result: dict[str, Any] = {"ratios": {str(n): r for n, r in pairs}}
    slower = [i for i, (_, r) in enumerate(pairs) if r >= 1]
    if not slower:
        return {**result, "context": pairs[0][0], "status": "faster at every measured context"}
    last = slower[-1]
    if last == len(pairs) - 1:
        return {**result, "context": None, "status": "not faster at the longest context"}
    (n0, r0), (n1, r1) = pairs[last], pairs[last + 1]
    t = math.log(r0) / (math.log(r0) - math.log(r1))
    at = math.exp(math.log(n0) + t * (math.log(n1) - math.log(n0)))
    earlier = [n for n, r in pairs[:last] if r < 1]
    status = "faster from here on" + (f" (also at {earlier})" if earlier else "")
    return {**result, "context": round(at), "between": [n0, n1], "status": status}


def attention_figures(latency: dict[int, dict], quality: dict[str, dict]) -> dict[str, Any]:
    contexts = sorted(latency)

    def ratios(name: str, against: str) -> list[float]:
        return [latency[n]["variants"][name]["relative"]
                / latency[n]["variants"][against]["relative"] for n in contexts]  # fmt: skip

    figures = {
        "linear_vs_softmax": crossover(contexts, ratios("linear-mlp", REFERENCE)),
        "linear_vs_sigmoid": crossover(contexts, ratios("linear-mlp", "sigmoid-mlp")),
        "sigmoid_vs_softmax": crossover(contexts, ratios("sigmoid-mlp", REFERENCE)),
    }
    if quality:
        base = quality[REFERENCE]["bits_per_byte"]
        figures["bits_per_byte_vs_softmax"] = {
            name: quality[name]["bits_per_byte"] - base for name in ("sigmoid-mlp", "linear-mlp")
        }
    return figures


def moe_figures(
    variants: Sequence[Variant], counts: dict[str, dict[str, int]],
    latency: dict[int, dict], quality: dict[str, dict], depth: int,
) -> dict[str, Any]:  # fmt: skip
    """Each mixture against its dense twin (equal active parameters) and the dense MLP of
    equal total parameters, per context: milliseconds, microseconds per token and per
    token per million active parameters, latency and MAC ratios, and what routing adds
    per token and layer over the twin (the networks differ only in their feed-forward)."""
    figures = {}
    for v in variants:
        if v.feed_forward != "moe":
            continue
        twin = twin_of(v, variants)
        per_context = {}
        for n, timed in sorted(latency.items()):
            row = {}
            for role, name in (("moe", v.name), ("twin", twin.name), ("dense", REFERENCE)):
                t = timed["variants"][name]
                per_token = 1000 * t["ms"] / n
                row[role] = {"ms": t["ms"], "us_per_token": per_token,
                             "us_per_token_per_million_active": per_token
                             / (counts[name]["active_params"] / 1e6)}  # fmt: skip
            moe, twin_t = timed["variants"][v.name], timed["variants"][twin.name]
            dense = timed["variants"][REFERENCE]
            row["latency_vs_twin"] = moe["relative"] / twin_t["relative"]
            row["latency_vs_dense"] = moe["relative"] / dense["relative"]
            row["macs_vs_twin"] = moe["macs"] / twin_t["macs"]
            extra = row["moe"]["us_per_token"] - row["twin"]["us_per_token"]
            row["extra_us_per_token_per_layer"] = extra / depth
            row["per_active_parameter_vs_twin"] = (
                row["moe"]["us_per_token_per_million_active"]
                / row["twin"]["us_per_token_per_million_active"]
            )
            per_context[str(n)] = row
        entry: dict[str, Any] = {"twin": twin.name, "dense": REFERENCE, "top_k": v.top_k,
                                 "params": counts[v.name]["params"],
                                 "active_params": counts[v.name]["active_params"],
                                 "twin_params": counts[twin.name]["params"],
                                 "contexts": per_context}  # fmt: skip
        if quality:
            entry["bits_per_byte"] = {role: quality[name]["bits_per_byte"] for role, name in
                                      (("moe", v.name), ("twin", twin.name),
                                       ("dense", REFERENCE))}  # fmt: skip
        figures[v.name] = entry
    return figures


# -- output ------------------------------------------------------------------------------
def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], left: int = 1) -> str:
    """Columns right-aligned (numbers), except the first ``left`` (names)."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        return "  ".join(c.ljust(w) if i < left else c.rjust(w)
                         for i, (c, w) in enumerate(zip(row, widths, strict=True)))  # fmt: skip

    return "\n".join([line(cells[0]), line(["-" * w for w in widths]), *map(line, cells[1:])])


def print_parameters(variants: Sequence[Variant], counts: dict[str, dict[str, int]]) -> None:
    reference = counts[REFERENCE]["params"]
    rows = []
    for v in variants:
        c = counts[v.name]
        vs = f"{c['params'] / reference - 1:+.2%}"
        rows.append([v.name, v.attention, v.feed_forward, v.mlp_ratio, c["hidden"],
                     v.top_k or "", f"{c['ffn_params_per_layer']:,}", f"{c['params']:,}",
                     f"{c['active_params']:,}", vs, f"{c['macs'] / 1e6:.1f}"])  # fmt: skip
    print("\nParameters (extracted network at the training context; active: per token)")
    print(table(["variant", "attention", "ffn", "ratio", "hidden", "top-k", "ffn/layer",
                 "params", "active", "vs ref", "MMACs"], rows, left=3))  # fmt: skip


def print_training(variants: Sequence[Variant], trained: dict[str, dict]) -> None:
    rows = []
    base = trained[REFERENCE]["quality"]["bits_per_byte"] if REFERENCE in trained else None
    for v in variants:
        if v.name not in trained:
            continue
        r = trained[v.name]
        bpb = r["quality"]["bits_per_byte"]
        rows.append(
            [
                v.name,
                f"{bpb:.4f}",
                f"{bpb - base:+.4f}" if base is not None else "",
                f"{r['quality']['next_token_accuracy']:.2f}",
                f"{r['history'][-1]['loss']:.4f}" if r["history"] else "",
                f"{r['samples_per_second']:.1f}" if r["samples_per_second"] else "",
                f"{r['train_seconds']:.0f}" + (" (saved)" if r.get("resumed") else ""),
            ]
        )
    print("\nQuality on the validation windows (each trained alone, same data and seed)")
    print(table(["variant", "bits/byte", "vs ref", "next-byte %", "train loss",
                 "samples/s", "seconds"], rows))  # fmt: skip


def print_latency(variants: Sequence[Variant], latency: dict[int, dict]) -> None:
    contexts = sorted(latency)
    rows = []
    for v in variants:
        cells = []
        for n in contexts:
            t = latency[n]["variants"][v.name]
            cells.append(f"{t['ms']:.3f} ({t['relative']:.2f}x)")
        rows.append([v.name, *cells])
    print("\nONNX Runtime latency, ms at the reference's median speed (x: against "
          f"{REFERENCE}, timed beside it)")  # fmt: skip
    print(table(["variant", *[f"ctx {n}" for n in contexts]], rows))


def print_derived(attention: dict[str, Any], moe: dict[str, Any]) -> None:
    print("\nAttention: latency ratio by context, and where the first becomes faster")
    rows = []
    for name, figure in attention.items():
        if "ratios" not in figure:
            continue
        ratios = "  ".join(f"{n}: {r:.2f}" for n, r in figure["ratios"].items())
        if figure["context"] is None:
            at = "-"
        elif figure["status"].startswith("faster at"):
            at = f"<={figure['context']}"
        else:
            at = f"~{figure['context']}"
        rows.append([name, ratios, at, figure["status"]])
    print(table(["pair", "ratio at context", "from", "status"], rows, left=2))
    if "bits_per_byte_vs_softmax" in attention:
        gaps = attention["bits_per_byte_vs_softmax"]
        print("bits/byte against softmax: "
              + ", ".join(f"{k} {g:+.4f}" for k, g in gaps.items()))  # fmt: skip
    for name, entry in moe.items():
        print(f"\n{name}: {entry['params']:,} parameters, {entry['active_params']:,} active; "
              f"twin {entry['twin']} {entry['twin_params']:,}")  # fmt: skip
        if "bits_per_byte" in entry:
            b = entry["bits_per_byte"]
            print(f"bits/byte: moe {b['moe']:.4f}, twin {b['twin']:.4f}, dense {b['dense']:.4f}")
        rows = []
        for n, row in entry["contexts"].items():
            rows.append([n, f"{row['moe']['us_per_token']:.2f}",
                         f"{row['twin']['us_per_token']:.2f}",
                         f"{row['dense']['us_per_token']:.2f}",
                         f"{row['moe']['us_per_token_per_million_active']:.2f}",
                         f"{row['twin']['us_per_token_per_million_active']:.2f}",
                         f"{row['extra_us_per_token_per_layer']:.2f}",
                         f"{row['latency_vs_twin']:.2f}", f"{row['macs_vs_twin']:.2f}",
                         f"{row['latency_vs_dense']:.2f}"])  # fmt: skip
        print(table(["context", "moe us/tok", "twin us/tok", "dense us/tok", "moe us/tok/M",
                     "twin us/tok/M", "+us/tok/layer", "moe/twin", "MACs moe/twin",
                     "moe/dense"], rows))  # fmt: skip


def write_results(out: Path, results: dict[str, Any]) -> None:
    write_atomic(out / "results.json", json.dumps(results, indent=2))


# -- the study ---------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--out", type=Path, required=True, help="folder for trainings, timings, results.json")
    add("--config", type=Path, default=EXAMPLE, help="the language-model job (data, training)")
    add("--epochs", type=int, default=2, help="training epochs of every variant")
    add("--windows-per-epoch", type=int, default=None, help="data.windows_per_epoch")
    add("--eval-windows", type=int, default=None, help="data.eval_windows (validation)")
    add("--train-context", type=int, default=None, help="data.context: default the config's")
    add("--train-threads", type=int, default=None, help="default: the config's train.threads")
    add("--train-device", default="cpu", help="train.device (cpu, cuda[:N])")
    add("--depth", type=int, default=3)
    add("--width", type=int, default=128)
    add("--heads", type=int, default=4)
    add("--head-dim", type=int, default=32)
    add("--mlp-ratio", type=int, default=6, help="the reference MLP's neurons per channel")
    add("--experts", type=int, default=6)
    add("--top-k", type=int, nargs="+", default=[1, 2], help="one mixture per value")
    add("--linear-chunk", type=int, default=None, help="default: the family's")
    add(
        "--contexts",
        type=int,
        nargs="+",
        default=[32, 64, 128, 256, 512, 1024, 2048],
        help="timed contexts (bytes); 128, 512, 2048 asked, the rest place the crossover",
    )
    add("--rounds", type=int, default=5, help="interleaved timing rounds per context")
    add("--max-seconds", type=float, default=None, help="latency.max_seconds of one timing")
    add("--min-runs", type=int, default=None, help="latency.min_runs")
    add("--warmup", type=int, default=None, help="latency.warmup")
    add("--seed", type=int, default=None, help="default: the config's")
    add("--skip-training", action="store_true", help="latency only")
    add("--skip-latency", action="store_true", help="training and quality only")
    add("--retime", action="store_true", help="time every context again, ignoring saved ones")
    return parser.parse_args(argv)


def base_config(args: argparse.Namespace) -> RunConfig:
    config = load_config(args.config)
    changes: dict[str, Any] = {}
    for key, value in (("data.context", args.train_context),
                       ("data.windows_per_epoch", args.windows_per_epoch),
                       ("data.eval_windows", args.eval_windows), ("seed", args.seed),
                       ("latency.max_seconds", args.max_seconds),
                       ("latency.min_runs", args.min_runs),
                       ("latency.warmup", args.warmup)):  # fmt: skip
        if value is not None:
            changes[key] = value
    config = with_overrides(config, changes) if changes else config
    if config.data.name != "python":
        raise SystemExit(f"--config {args.config}: the study is of the language model (python)")
    if args.train_threads is None:
        args.train_threads = config.train.threads
    return config


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(1)  # exports and timings; trainings set train.threads themselves
    base = base_config(args)
    chunk = args.linear_chunk or ElasticTransformer.config_class().linear_chunk
    shape = Shape(args.depth, args.width, args.heads, args.head_dim, args.experts, chunk)
    variants = make_variants(shape, args.mlp_ratio, args.top_k)
    spec = expected_spec(base.data.name, base.data.options())
    counts = {v.name: parameter_counts(v, shape, spec) for v in variants}
    notes = equality_notes(variants, shape, counts)
    settings = base.latency.settings()
    results: dict[str, Any] = {
        "command": " ".join(["python", "bench/operators.py", *(argv or sys.argv[1:])]),
        "shape": asdict(shape),
        "training_context": spec.input.shape[0],
        "variants": {v.name: {**asdict(v), **counts[v.name]} for v in variants},
        "equality_notes": notes,
        "latency_settings": settings.model_dump(mode="json"),
        "environment": environment(settings),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    print_parameters(variants, counts)
    for note in notes or [
        "parameters equal: every variant as the reference, each twin "
        "as its mixture's active ones less the router"
    ]:
        print("note:", note)
    write_results(args.out, results)

    trained: dict[str, dict] = {}
    if not args.skip_training:
        task = None
        for v in variants:
            trained[v.name], task = train_variant(base, v, shape, args, task)
        results["training"] = {name: {k: r[k] for k in ("quality", "history", "train_seconds",
                                                        "samples_per_second")}
                               for name, r in trained.items()}  # fmt: skip
        results["training_settings"] = trained[REFERENCE]["identity"]["train"]
        print_training(variants, trained)
        write_results(args.out, results)

    latency: dict[int, dict] = {}
    if not args.skip_latency:
        identity = latency_identity(variants, shape, settings, args.rounds, base.seed)
        vocab = spec.input.vocab_size
        for n in sorted(set(args.contexts)):
            path = args.out / "latency" / f"context-{n}.json"
            if path.exists() and not args.retime:
                saved = json.loads(path.read_text())
                if saved.get("identity") == identity:
                    latency[n] = saved["timing"]
                    print(f"context {n}: timed before ({path})")
                    continue
            print(f"timing context {n} ...", flush=True)
            latency[n] = time_context(n, variants, shape, vocab, settings, args.rounds, base.seed)
            path.parent.mkdir(exist_ok=True)
            write_atomic(path, json.dumps({"identity": identity, "timing": latency[n]}, indent=2))
        results["latency"] = {str(n): t for n, t in latency.items()}
        print_latency(variants, latency)
        quality = {name: r["quality"] for name, r in trained.items()}
        results["attention"] = attention_figures(latency, quality)
        results["moe"] = moe_figures(variants, counts, latency, quality, shape.depth)
        print_derived(results["attention"], results["moe"])
        write_results(args.out, results)
    print(f"\nwrote {args.out / 'results.json'}")


if __name__ == "__main__":
    main()
