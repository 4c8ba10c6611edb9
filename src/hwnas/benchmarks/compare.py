"""Which search is best: run searchers over seeds on a tabular benchmark and score them.

Hypervolume is measured after normalising each objective so the table's best value maps to
0 and its median to 1, with reference point 1: only the better half of the space counts, so
a searcher is not rewarded for covering the bad corner.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from hwnas.benchmarks.table import Benchmark
from hwnas.errors import HwnasError
from hwnas.files import MiB, make_out, read_json_limited, run_lock, write_atomic
from hwnas.pareto import (
    Objective,
    feasible_mask,
    hypervolume,
    objective_matrix,
    running_hypervolume,
)
from hwnas.progress import Progress, SilentProgress
from hwnas.search import make_searcher
from hwnas.store import Store
from hwnas.study import Study

THRESHOLDS = (0.95, 0.99)
# The score counts only archs better than the table's median in every objective; LINAS is
# told so, as a user states the region they care about. A table's values carry no noise;
# the Gaussian process is told so.
SEARCHER_OPTIONS = {"linas": {"reference_quantile": 0.5}, "optuna-gp": {"deterministic": True}}


@dataclass(frozen=True)
class RunScore:
    searcher: str
    seed: int
    curve: list[float]  # hypervolume ratio after each unique evaluation
    pareto_found: int
    seconds_per_candidate: float

    def evals_to(self, threshold: float) -> int | None:
        hits = np.nonzero(np.asarray(self.curve) >= threshold - 1e-12)[0]
        return int(hits[0]) + 1 if len(hits) else None


class Scorer:
    """Ground truth of a benchmark: the normalisation, the true front and its hypervolume.

    The benchmark says what they are (``truth(objectives)``): a table by enumerating its
    rows, a generated problem too large for that by solving for its front."""

    def __init__(self, bench: Benchmark, objectives: Sequence[Objective]) -> None:
        self.objectives = tuple(objectives)
        truth = bench.truth(self.objectives)
        self.best, self.median = truth.best, truth.median
        self.scale = np.where(self.median > self.best, self.median - self.best, 1.0)
        self.true_front_keys = truth.front_keys
        self.true_hv = hypervolume(self.normalise(truth.front), np.ones(len(self.objectives)))
        if self.true_hv <= 0:
            raise HwnasError(
                f"{bench.name}: no feasible arch beats the table's median in every objective, "
                "so hypervolume ratios are undefined; relax the limits"
            )

    def normalise(self, F: np.ndarray) -> np.ndarray:
        return (F - self.best) / self.scale

    def curve(self, metrics: Sequence[dict[str, float] | None]) -> list[float]:
        """Hypervolume ratio after each evaluation (invalid or infeasible ones leave it as is)."""
        points = [
            self.normalise(objective_matrix([v], self.objectives))[0]
            if v is not None and feasible_mask([v], self.objectives)[0]
            else None
            for v in metrics
        ]
        ref = np.ones(len(self.objectives))
        return [hv / self.true_hv for hv in running_hypervolume(points, ref)]


def run_comparison(
    bench: Benchmark,
    objectives: Sequence[Objective],
    searchers: Sequence[str],
    seeds: Sequence[int],
    budget: int,
    out: Path,
    progress: Progress | None = None,
) -> dict:
    """Run every searcher for every seed (resuming from ``out/runs.sqlite``) and summarise;
    one process at a time holds ``out``."""
    with run_lock(out):
        return _compare(bench, objectives, searchers, seeds, budget, out,
                        progress or SilentProgress())  # fmt: skip


def _compare(
    bench: Benchmark, objectives: Sequence[Objective], searchers: Sequence[str],
    seeds: Sequence[int], budget: int, out: Path, progress: Progress,
) -> dict:  # fmt: skip
    scorer = Scorer(bench, objectives)
    make_out(out)
    timings_path = out / "timings.json"
    timings = _read_timings(timings_path)
    scores: list[RunScore] = []
    overall = progress.task("searchers x seeds", len(searchers) * len(seeds))
    with Store(out / "runs.sqlite") as store:
        for name in searchers:
            for seed in seeds:
                run_id = f"{name}/seed{seed}"
                study = Study(
                    space=bench.space,
                    evaluator=bench,
                    objectives=objectives,
                    searcher=make_searcher(
                        name, bench.space, objectives, seed, SEARCHER_OPTIONS.get(name)
                    ),
                    store=store,
                    run_id=run_id,
                    budget=budget,
                    config={
                        "benchmark": bench.name,
                        "objectives": [asdict(o) for o in objectives],
                        "searcher": name,
                        "seed": seed,
                    },
                    progress=progress,
                )
                evaluations = study.optimize()[:budget]
                if study.proposed:
                    timings[run_id] = study.seconds_per_candidate
                    write_atomic(timings_path, json.dumps(timings, indent=1))
                found = {e.arch_key for e in evaluations} & scorer.true_front_keys
                scores.append(
                    RunScore(
                        name,
                        seed,
                        scorer.curve([e.metrics for e in evaluations]),
                        len(found),
                        timings.get(run_id, float("nan")),
                    )
                )
                overall.advance(1)
    overall.close()
    summary = summarise(scores, scorer, bench.name, objectives, budget)
    write_atomic(out / "summary.json", json.dumps(summary, indent=2))
    write_curves(scores, out / "curves.csv")
    plot_curves(scores, out / "curves.html", bench.name)
    return summary


def checkpoints(budget: int) -> list[int]:
    return sorted({b for b in (50, 100, 200) if b < budget} | {budget})


def _mean_or_null(values: list[int | None]) -> float | None:
    return float(np.mean(values)) if values and all(v is not None for v in values) else None


def summarise(
    scores: Sequence[RunScore],
    scorer: Scorer,
    name: str,
    objectives: Sequence[Objective],
    budget: int,
) -> dict:
    marks = checkpoints(budget)
    per_searcher: dict[str, dict] = {}
    for searcher in dict.fromkeys(s.searcher for s in scores):
        runs = [s for s in scores if s.searcher == searcher]
        entry: dict = {"seeds": len(runs)}
        for mark in marks:
            at = [r.curve[min(mark, len(r.curve)) - 1] if r.curve else 0.0 for r in runs]
            entry[f"hv_ratio@{mark}"] = float(np.mean(at))
            entry[f"hv_ratio_std@{mark}"] = float(np.std(at))
        for threshold in THRESHOLDS:
            label = f"{round(threshold * 100)}"
            per_seed = [r.evals_to(threshold) for r in runs]
            entry[f"evals_to_{label}"] = _mean_or_null(per_seed)
            entry[f"evals_to_{label}_per_seed"] = per_seed
        entry["pareto_fraction"] = float(
            np.mean([r.pareto_found / len(scorer.true_front_keys) for r in runs])
        )
        entry["seconds_per_candidate"] = float(np.nanmean([r.seconds_per_candidate for r in runs]))
        per_searcher[searcher] = entry
    return {
        "benchmark": name,
        "objectives": [asdict(o) for o in objectives],
        "budget": budget,
        "seeds": sorted({s.seed for s in scores}),
        "normalisation": {"best": scorer.best.tolist(), "median": scorer.median.tolist()},
        "true_front": {"size": len(scorer.true_front_keys), "hypervolume": scorer.true_hv},
        "searchers": per_searcher,
    }


def _read_timings(path: Path) -> dict[str, float]:
    """Each finished run's searcher seconds per candidate, as a killed benchmark left them."""
    if not path.exists():
        return {}
    timings = read_json_limited(path, "timings", 64 * MiB)
    if not isinstance(timings, dict) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in timings.values()
    ):
        raise HwnasError(f"timings {path}: expected an object of seconds per run")
    return timings


def write_curves(scores: Sequence[RunScore], path: Path) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["searcher", "seed", "evaluations", "hv_ratio"])
    for s in scores:
        for i, value in enumerate(s.curve, start=1):
            writer.writerow([s.searcher, s.seed, i, f"{value:.6f}"])
    write_atomic(path, buffer.getvalue())


def plot_curves(scores: Sequence[RunScore], path: Path, title: str) -> None:
    """Mean hypervolume ratio per searcher with a band of one standard deviation."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for searcher in dict.fromkeys(s.searcher for s in scores):
        curves = [s.curve for s in scores if s.searcher == searcher and s.curve]
        length = min(len(c) for c in curves)
        matrix = np.array([c[:length] for c in curves])
        x = np.arange(1, length + 1)
        mean, std = matrix.mean(axis=0), matrix.std(axis=0)
        fig.add_trace(go.Scatter(x=x, y=mean, name=searcher, mode="lines"))
        fig.add_trace(
            go.Scatter(
                x=np.concatenate([x, x[::-1]]),
                y=np.concatenate([mean + std, (mean - std)[::-1]]),
                fill="toself",
                opacity=0.15,
                line={"width": 0},
                showlegend=False,
                hoverinfo="skip",
                name=f"{searcher} ±1 sd",
            )
        )
    for level in THRESHOLDS:
        fig.add_hline(y=level, line_dash="dot", annotation_text=f"{level:.0%}")
    fig.update_layout(
        title=f"Hypervolume ratio to the true front: {title}",
        xaxis_title="unique evaluations",
        yaxis_title="hypervolume ratio",
        template="plotly_white",
    )
    write_atomic(path, fig.to_html(include_plotlyjs=True))
