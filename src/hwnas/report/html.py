"""A self-contained HTML report of a run: the front, the hypervolume curve, the front table."""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from hwnas.pareto import Objective, feasible_mask, objective_matrix, running_hypervolume


def hypervolume_curve(
    metrics: Sequence[dict[str, float] | None],
    objectives: Sequence[Objective],
    constraints: Sequence[Objective] = (),
) -> list[float]:
    """Hypervolume of the evaluated front after each evaluation, counting only results within
    every limit, with objectives scaled to the range those results span and the reference
    point just beyond their worst (so the curve is comparable within one run)."""
    limits = [*objectives, *constraints]
    ok = [m is not None and feasible_mask([m], limits)[0] for m in metrics]
    counted = [m for m, keep in zip(metrics, ok, strict=True) if keep]
    if not counted:
        return [0.0] * len(metrics)
    F = objective_matrix(counted, objectives)
    lo, hi = F.min(axis=0), F.max(axis=0)
    scale = np.where(hi > lo, hi - lo, 1.0)
    rows = iter((F - lo) / scale)
    points = [next(rows) if keep else None for keep in ok]
    return running_hypervolume(points, np.full(len(objectives), 1.1))


def write_report(
    path: Path,
    title: str,
    evaluations: Sequence[dict],
    front: Sequence[dict],
    knee_key: str | None,
    objectives: Sequence[Objective],
    settings: dict,
    constraints: Sequence[Objective] = (),
) -> None:
    """``evaluations``/``front`` are dicts with ``key`` and ``metrics``."""
    import plotly.graph_objects as go

    x_obj, y_obj = objectives[1] if len(objectives) > 1 else objectives[0], objectives[0]
    valid = [e for e in evaluations if e["metrics"] is not None]
    ordered = sorted(front, key=lambda e: e["metrics"][x_obj.name])
    knee = [e for e in front if e["key"] == knee_key]

    def points(entries: Sequence[dict], name: str, mode: str, marker: dict) -> go.Scatter:
        return go.Scatter(
            x=[e["metrics"][x_obj.name] for e in entries],
            y=[e["metrics"][y_obj.name] for e in entries],
            text=[e["key"] for e in entries],
            mode=mode,
            name=name,
            marker=marker,
        )

    scatter = go.Figure()
    scatter.add_trace(points(valid, "evaluated", "markers", {"color": "lightgray", "size": 7}))
    scatter.add_trace(points(ordered, "Pareto front", "lines+markers", {"size": 9}))
    if knee:
        star = {"size": 16, "symbol": "star", "color": "crimson"}
        scatter.add_trace(points(knee, "knee", "markers", star))
    scatter.update_layout(
        title="Evaluated sub-networks and the Pareto front",
        xaxis_title=x_obj.name,
        yaxis_title=y_obj.name,
        template="plotly_white",
    )
    curve = hypervolume_curve([e["metrics"] for e in evaluations], objectives, constraints)
    hv = go.Figure(go.Scatter(x=list(range(1, len(curve) + 1)), y=curve, mode="lines"))
    hv.update_layout(
        title="Hypervolume of the evaluated front",
        xaxis_title="evaluations",
        yaxis_title="hypervolume (objectives scaled to the run's range)",
        template="plotly_white",
    )
    names = list(front[0]["metrics"]) if front else []
    rows = "".join(
        "<tr><td><code>{}</code></td>{}</tr>".format(
            html.escape(e["key"]) + (" (knee)" if e["key"] == knee_key else ""),
            "".join(f"<td>{e['metrics'][n]:.4g}</td>" for n in names),
        )
        for e in ordered
    )
    header = "".join(f"<th>{html.escape(n)}</th>" for n in names)
    settings_rows = "".join(
        f"<tr><td>{html.escape(str(k))}</td><td><code>{html.escape(str(v))}</code></td></tr>"
        for k, v in settings.items()
    )
    path.write_text(
        f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}td:first-child{{text-align:left}}
</style></head><body><h1>{html.escape(title)}</h1>
<p>{len(evaluations)} sub-networks evaluated; {len(front)} on the Pareto front.</p>
{scatter.to_html(full_html=False, include_plotlyjs=True)}
{hv.to_html(full_html=False, include_plotlyjs=False)}
<h2>The front</h2><table><tr><th>arch</th>{header}</tr>
{rows}</table><h2>Settings</h2><table>{settings_rows}</table></body></html>"""
    )
