"""hwnas's zero-cost proxies checked against NAS-Bench-Suite-Zero's (``hwnas bench proxies``).

For each published cell, every proxy is scored on hwnas's NAS-Bench-201 network (the
``nb201`` family) at initialisation, then ranked against the published score of the same
proxy and against the cell's published validation accuracy (Spearman's rho).

Data-free proxies (``Proxy.uses_data`` false) need no images, so they run on the very
network NAS-Bench-201 trained: its input size and classes for the data set. Data proxies
run on the network built for the images given (the bundled digits, or CIFAR-10 batches),
on one minibatch of them: a different input than the published scores had, which is what
the comparison measures.

Scores are appended to ``OUT/scores.jsonl`` as each cell finishes, so an interrupted run
continues where it stopped; ``OUT/summary.json`` is written at the end.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import rankdata, spearmanr

from hwnas.benchmarks.zero_cost import PublishedCell, load_published
from hwnas.errors import HwnasError
from hwnas.families import build_family
from hwnas.families.nb201.cell import (
    CELLS,
    cell_string,
    effective_edges,
    effective_genomes,
    genome_codes,
    genome_string,
)
from hwnas.files import MiB, make_out, read_json_limited, run_lock, write_atomic
from hwnas.progress import Progress, SilentProgress
from hwnas.proxies import PROXIES, ProxyBatch, check_proxy_names, score_proxies, task_batch
from hwnas.tasks import load_task
from hwnas.tasks.base import InputSpec, TaskSpec

TRAINED_ON = {"cifar10": (32, 10), "cifar100": (32, 100), "ImageNet16-120": (16, 120)}
"""Per NAS-Bench-201 data set, the side of its images and its classes."""
SCORES = "scores.jsonl"
SCORED_WITH = {"dataset", "images", "images_path", "batch_size", "seed"}
"""The settings a proxy cache's scores depend on, besides the proxies."""


def _spearman(ours: Sequence[float], theirs: Sequence[float]) -> float | None:
    pairs = np.array([(a, b) for a, b in zip(ours, theirs, strict=True)
                      if not (math.isnan(a) or math.isnan(b))])  # fmt: skip
    if len(pairs) < 3 or np.ptp(np.nan_to_num(pairs, posinf=1e300, neginf=-1e300), 0).min() == 0:
        return None
    return float(spearmanr(pairs[:, 0], pairs[:, 1]).statistic)


def _read_done(out: Path, settings: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Cells already scored by an earlier, interrupted run of the same settings (kept in
    ``OUT/settings.json``); scores made with any other setting are refused, not reused."""
    recorded = out / "settings.json"
    if recorded.exists():
        before = read_json_limited(recorded, "proxy settings", MiB)
        if isinstance(before, dict) and before.get("proxies") != settings["proxies"]:
            raise HwnasError(f"{out}: scored other proxies "
                             f"({', '.join(map(str, before.get('proxies') or []))}); "
                             "pick another --out")  # fmt: skip
        if before != settings:
            raise HwnasError(f"{out}: scored with other settings ({before}); pick another --out")
    else:
        write_atomic(recorded, json.dumps(settings, indent=1))
    path, done = out / SCORES, {}
    if not path.exists():
        return done
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        try:
            row = json.loads(line)
            done[row["cell"]] = row
        except (json.JSONDecodeError, KeyError, TypeError):
            raise HwnasError(f"{path}:{number}: not a line this command wrote; "
                             "remove the file or pick another --out") from None  # fmt: skip
    return done


def validate_proxies(
    published: Path,
    dataset: str,
    out: Path,
    names: Sequence[str] | None = None,
    images: str = "digits",
    images_path: str | None = None,
    batch_size: int = 64,
    cells: int | None = None,
    seed: int = 0,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Score ``names`` (default: every proxy) on the published cells of ``dataset`` (every
    ``len // cells``-th one when ``cells`` is given) and write ``out/summary.json``."""
    names = list(names or PROXIES)
    check_proxy_names(names)
    if dataset not in TRAINED_ON:
        raise HwnasError(f"--dataset {dataset!r}: choose from {', '.join(TRAINED_ON)}")
    chosen = load_published(published, dataset)
    if cells is not None:
        chosen = chosen[:: max(1, len(chosen) // cells)][:cells]
    with run_lock(_checked_out(out)):
        done = score_cells([cell.ops for cell in chosen], dataset, out, names, images,
                           images_path, batch_size, seed, progress)  # fmt: skip
        summary = _summarise(chosen, done, names, dataset, images, batch_size, seed)
        write_atomic(out / "summary.json", json.dumps(summary, indent=1))
    return summary


def _checked_out(out: Path) -> Path:
    if out.exists() and not out.is_dir():
        raise HwnasError(f"--out {out}: exists and is not a folder")
    return out


def score_cells(
    cells: Sequence[Mapping[str, str]],
    dataset: str,
    out: Path,
    names: Sequence[str],
    images: str = "digits",
    images_path: str | None = None,
    batch_size: int = 64,
    seed: int = 0,
    progress: Progress | None = None,
) -> dict[str, dict[str, Any]]:
    """Proxies ``names`` of each of ``cells`` (op per edge name), appended to
    ``out/scores.jsonl`` as each cell finishes so a killed run goes on where it stopped:
    per NAS-Bench-201 cell string, its ``scores`` and ``seconds`` per proxy. The caller
    holds ``out``'s run lock."""
    check_proxy_names(names)
    if dataset not in TRAINED_ON:
        raise HwnasError(f"dataset {dataset!r}: choose from {', '.join(TRAINED_ON)}")
    _checked_out(out)
    task = load_task(images, images_path, seed)
    side, classes = TRAINED_ON[dataset]
    image_spec = TaskSpec("classification", InputSpec("image", (3, side, side)), classes)
    with torch.random.fork_rng(devices=[]):  # both networks at their seeded initial values
        torch.default_generator.manual_seed(seed)
        published_net = build_family("nb201", {}, image_spec)
        data_net = build_family("nb201", {}, task.spec)
    data_batch = task_batch(task, batch_size, seed)
    free_batch = ProxyBatch(torch.zeros(2, *image_spec.input.shape), None, task.loss)
    data_free = [n for n in names if not PROXIES[n].uses_data]
    with_data = [n for n in names if PROXIES[n].uses_data]
    make_out(out)
    settings = {"proxies": sorted(names), "dataset": dataset, "images": images,
                "images_path": images_path, "batch_size": batch_size, "seed": seed}  # fmt: skip
    done = _read_done(out, settings)
    bar = (progress or SilentProgress()).task(f"proxies on {dataset}", len(cells))
    with (out / SCORES).open("a") as log:
        for ops in cells:
            key = cell_string(ops)
            if key not in done:
                done[key] = _score_cell(ops, key, published_net, data_net, data_free,
                                        with_data, free_batch, data_batch, seed)  # fmt: skip
                log.write(json.dumps(done[key]) + "\n")
                log.flush()
            bar.advance()
    bar.close()
    return done


def _score_cell(ops: Mapping[str, str], key: str, published_net: Any, data_net: Any,
                data_free: list[str], with_data: list[str], free_batch: ProxyBatch,
                data_batch: ProxyBatch, seed: int) -> dict[str, Any]:  # fmt: skip
    scores: dict[str, tuple[float, float]] = {}
    for family, proxies, batch in ((published_net, data_free, free_batch),
                                   (data_net, with_data, data_batch)):  # fmt: skip
        if proxies:
            network = family.extract(family.space().make(dict(ops)))
            scores.update(score_proxies(proxies, network, batch, seed))
    return {"cell": key, "scores": {n: v for n, (v, _) in scores.items()},
            "seconds": {n: s for n, (_, s) in scores.items()}}  # fmt: skip


def _summarise(cells: Sequence[PublishedCell], done: dict[str, dict[str, Any]],
               names: Sequence[str], dataset: str, images: str, batch_size: int,
               seed: int) -> dict[str, Any]:  # fmt: skip
    rows = [done[cell_string(cell.ops)] for cell in cells]
    accuracy = [cell.accuracy for cell in cells]
    per_proxy = {}
    for name in names:
        ours = [row["scores"][name] for row in rows]
        theirs = [cell.scores.get(name, math.nan) for cell in cells]
        has_published = any(name in cell.scores for cell in cells)
        per_proxy[name] = {
            "description": PROXIES[name].description,
            "uses_data": PROXIES[name].uses_data,
            "spearman_with_published": _spearman(ours, theirs) if has_published else None,
            "spearman_with_accuracy": _spearman(ours, accuracy),
            "published_spearman_with_accuracy": (
                _spearman(theirs, accuracy) if has_published else None
            ),  # fmt: skip
            "seconds_per_cell": float(np.mean([row["seconds"][name] for row in rows])),
            "undefined": sum(not math.isfinite(v) for v in ours),
        }
    return {"dataset": dataset, "cells": len(cells), "images": images,
            "batch_size": batch_size, "seed": seed, "proxies": per_proxy}  # fmt: skip


def effective_cells() -> list[str]:
    """The cell string of each effective cell: what a proxy cache scores."""
    return [genome_string(g) for g in effective_genomes()]


def proxy_features(caches: Sequence[Path]) -> tuple[str, Callable[[np.ndarray], np.ndarray]]:
    """Predictor features from proxy caches (``score_cells`` folders, the parts of one
    ``bench/proxy_cache.py`` run): a label naming the proxies, and the map from index
    genomes to each proxy's rank quantile among the cached cells, looked up by the
    genome's effective cell (dead edges cannot change what a proxy of the network the
    cell computes measures). The label also names the data set, images, minibatch and seed
    the cache was scored with. Undefined scores (the cell with no path to the output) rank
    lowest. Every effective cell must be cached: refused here, before any search."""
    if not caches:
        raise HwnasError("no proxy cache given")
    settings, scores = None, {}
    for folder in caches:
        recorded = folder / "settings.json"
        if not (folder / SCORES).is_file() or not recorded.is_file():
            raise HwnasError(f"proxy cache {folder}: no {SCORES} and settings.json in it; "
                             "make one with bench/proxy_cache.py")  # fmt: skip
        these = read_json_limited(recorded, "proxy settings", MiB)
        names = these.get("proxies") if isinstance(these, dict) else None
        if not names or not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise HwnasError(
                f"{recorded}: not the settings bench/proxy_cache.py writes (no list of proxy names)"
            )
        if not SCORED_WITH <= these.keys():
            raise HwnasError(f"{recorded}: not the settings bench/proxy_cache.py writes "
                             f"(no {', '.join(sorted(SCORED_WITH - these.keys()))})")  # fmt: skip
        if settings is not None and these != settings:
            raise HwnasError(f"proxy cache {folder}: scored with other settings ({these}) "
                             f"than {caches[0]} ({settings})")  # fmt: skip
        settings = these
        scores.update(_read_done(folder, these))
    genomes = effective_genomes()
    keys = [genome_string(g) for g in genomes]
    missing = [k for k in keys if k not in scores]
    if missing:
        raise HwnasError(f"proxy cache {', '.join(map(str, caches))}: {len(missing)} of "
                         f"{len(keys)} effective cells have no score "
                         f"(first: {missing[0]})")  # fmt: skip
    try:
        raw = np.array([[float(scores[k]["scores"][n]) for n in names] for k in keys])
    except (KeyError, TypeError, ValueError):
        raise HwnasError(f"proxy cache {caches[0]}: a line lacks one of the proxies "
                         f"{', '.join(names)}") from None  # fmt: skip
    ranks = np.zeros_like(raw)
    for j in range(raw.shape[1]):
        finite = np.isfinite(raw[:, j])
        ranks[finite, j] = rankdata(raw[finite, j]) / max(int(finite.sum()), 1)
    by_code = np.zeros((CELLS, raw.shape[1]))
    by_code[genome_codes(genomes)] = ranks

    def lookup(genome: np.ndarray) -> np.ndarray:
        return by_code[genome_codes(effective_edges(genome))]

    return _cache_label(names, settings), lookup


def _cache_label(names: Sequence[str], settings: Mapping[str, Any]) -> str:
    """What the cache's scores depend on, so that a run stored with another cache's scores is
    not resumed: ``proxies:nwot(cifar10, digits, batch 32, seed 0)``. The data set sets the
    data-free proxies' network; an image folder given by path is named by it."""
    images = settings["images_path"] or settings["images"]
    return (f"proxies:{','.join(names)}({settings['dataset']}, {images}, "
            f"batch {settings['batch_size']}, seed {settings['seed']})")  # fmt: skip
