"""The report's plotly figures: the front over every evaluation, hypervolume, training loss.

Hover labels carry the short label and the metrics with their units, never the arch key.
Every text that reaches plotly is HTML-escaped (plotly renders a subset of HTML in labels).
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go

from hwnas.pareto import Objective
from hwnas.report.format import MetricFormat, finite
from hwnas.report.hypervolume import Scale, counted_mask

GREY = "#b8bec8"
FAINT = "#d5d9e0"
ACCENT = "#4f46e5"
EXPORT = "#e8590c"
KNEE = "#b54708"
LIMIT = "#d92d20"
FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif'


def esc(text: Any) -> str:
    return html.escape(str(text), quote=False)


def iqr_name(name: str) -> str | None:
    """The metric holding ``name``'s interquartile range, by the ``X_ms`` -> ``X_iqr_ms``
    convention of measured latency."""
    return f"{name[:-3]}_iqr_ms" if name.endswith("_ms") and not name.endswith("_iqr_ms") else None


def hover_text(
    label: str,
    metrics: Mapping[str, Any],
    formats: Mapping[str, MetricFormat],
    order: Sequence[str],
    extra: str = "",
) -> str:
    """``<b>label</b>`` then ``name: value unit`` per metric (an IQR beside its median)."""
    lines = [f"<b>{esc(label)}</b>" + (f"  <i>{esc(extra)}</i>" if extra else "")]
    folded = {iqr_name(n) for n in order} - {None}
    for name in order:
        if name in folded or name not in metrics:
            continue
        fmt = formats.get(name) or MetricFormat(name)
        line = f"{esc(name)}: {esc(fmt.text(metrics[name]))}"
        spread = iqr_name(name)
        if spread and finite(metrics.get(spread)):
            line += f" (IQR {esc(formats.get(spread, fmt).text(metrics[spread]))})"
        lines.append(line)
    return "<br>".join(lines)


def axis_title(objective: Objective, fmt: MetricFormat) -> str:
    unit = f" ({fmt.unit})" if fmt.unit else ""
    better = "lower" if objective.direction == "min" else "higher"
    return f"{esc(objective.name)}{esc(unit)} · {better} is better"


def _layout(fig: go.Figure, height: int, **extra: Any) -> None:
    fig.update_layout(
        template="plotly_white",
        autosize=True,
        height=height,
        margin={"l": 64, "r": 16, "t": 36, "b": 52},
        font={"family": FONT, "size": 12, "color": "#344054"},
        legend={
            "orientation": "h",
            "yanchor": "bottom",
            "y": 1.0,
            "x": 0,
            "xanchor": "left",
            "font": {"size": 11},
        },  # fmt: skip
        hoverlabel={
            "bgcolor": "white",
            "bordercolor": "#d0d5dd",
            "font": {"family": FONT, "size": 12, "color": "#1f2430"},
        },  # fmt: skip
        **extra,
    )
    fig.update_xaxes(gridcolor="#eef0f3", zeroline=False, linecolor="#d0d5dd", automargin=True)
    fig.update_yaxes(gridcolor="#eef0f3", zeroline=False, linecolor="#d0d5dd", automargin=True)


def _log_worthy(values: Sequence[float]) -> bool:
    values = [v for v in values if finite(v)]
    return bool(values) and min(values) > 0 and max(values) / min(values) >= 20


@dataclass
class FrontPlot:
    figure: go.Figure
    caption: str  # HTML


def front_figure(
    summary: Mapping[str, Any],
    evaluations: Sequence[Mapping[str, Any]],
    objectives: Sequence[Objective],
    constraints: Sequence[Objective],
    formats: Mapping[str, MetricFormat],
    order: Sequence[str],
    exported_by_key: Mapping[str, list[str]],
) -> FrontPlot:
    """The first objective on y against the second on x (against the evaluation number when
    the search has one objective), every evaluation in grey, the front as a staircase."""
    y_obj = objectives[0]
    x_obj = objectives[1] if len(objectives) > 1 else None
    # With one objective, x is the evaluation number ("_index", added to copies).
    indexed = [
        (i, {**e, "metrics": {**e["metrics"], "_index": i}})
        for i, e in enumerate(evaluations, 1)
        if e.get("metrics")
    ]
    ok = counted_mask([e["metrics"] for _, e in indexed], objectives, constraints)
    x_name = x_obj.name if x_obj else "_index"
    x_fmt = formats.get(x_name) or MetricFormat(x_name, {"integer": True})
    y_fmt = formats.get(y_obj.name) or MetricFormat(y_obj.name)
    key_index = {}
    for i, e in indexed:
        key_index.setdefault(e["key"], i)

    def xy(m: Mapping[str, Any]) -> tuple[float, float]:
        return m.get(x_name, math.nan), m.get(y_obj.name, math.nan)

    fig = go.Figure()
    caption = []
    feasible = [e for (_, e), keep in zip(indexed, ok, strict=True) if keep]
    outside = [e for (_, e), keep in zip(indexed, ok, strict=True) if not keep]
    for name, entries, marker in (
        ("evaluated", feasible, {"color": GREY, "size": 7, "opacity": 0.85}),
        ("outside a limit", outside, {"color": FAINT, "size": 7, "symbol": "x-thin",
                                      "line": {"width": 1.5, "color": GREY}}),
    ):  # fmt: skip
        points = [(e, *xy(e["metrics"])) for e in entries]
        points = [p for p in points if finite(p[1]) and finite(p[2])]
        if not points:
            continue
        fig.add_trace(go.Scatter(
            x=[p[1] for p in points], y=[p[2] for p in points], mode="markers", name=name,
            marker=marker, hoverinfo="text",
            hovertext=[hover_text(p[0]["label"], p[0]["metrics"], formats, order) for p in points],
        ))  # fmt: skip

    front = [
        {**f, "metrics": {**f["metrics"], "_index": key_index.get(f["key"], math.nan)}}
        for f in summary.get("front", [])
    ]
    front = [f for f in front if all(finite(v) for v in xy(f["metrics"]))]
    all_x = [v for v in (xy(e["metrics"])[0] for e in feasible + outside) if finite(v)]
    # the staircase reaches as far as the evaluations within limits do
    in_x = [v for v in (xy(e["metrics"])[0] for e in feasible) if finite(v)]
    in_y = [v for v in (xy(e["metrics"])[1] for e in feasible) if finite(v)]
    stairs = (
        _staircase(front, feasible, x_obj, y_obj, x_name, in_x, in_y)
        if len(objectives) <= 2
        else None
    )
    if stairs is not None:
        fig.add_trace(go.Scatter(
            x=stairs[0], y=stairs[1], mode="lines", name="Pareto front", hoverinfo="skip",
            line={"color": ACCENT, "width": 2, "shape": stairs[2]},
        ))  # fmt: skip
    if front:
        spread = iqr_name(x_name)
        error = None
        if spread and all(finite(f["metrics"].get(spread)) for f in front):
            error = {"type": "data", "array": [f["metrics"][spread] / 2 for f in front],
                     "visible": True, "color": ACCENT, "thickness": 1.2, "width": 3}  # fmt: skip
            caption.append(
                f"Horizontal bars on front points: ± half the interquartile range of the timed "
                f"runs of <code>{esc(x_name)}</code> (the median is the point)."
            )
        fig.add_trace(go.Scatter(
            x=[xy(f["metrics"])[0] for f in front], y=[xy(f["metrics"])[1] for f in front],
            mode="markers", name="on the front", error_x=error, hoverinfo="text",
            marker={"color": ACCENT, "size": 9, "line": {"color": "white", "width": 1}},
            hovertext=[hover_text(f.get("label", ""), f["metrics"], formats, order,
                                  " · ".join(exported_by_key.get(f["key"], [])))
                       for f in front],
        ))  # fmt: skip
    _exported_trace(fig, summary, front, exported_by_key, formats, order, xy)
    x_log = bool(x_obj) and _log_worthy(all_x)
    all_y = [v for v in (xy(e["metrics"])[1] for e in feasible + outside) if finite(v)]
    caption.extend(_limits(fig, objectives, constraints, x_name, y_obj, formats, x_log,
                           (all_x, all_y)))  # fmt: skip
    x_title = axis_title(x_obj, x_fmt) if x_obj else "evaluation number"
    fig.update_xaxes(title_text=x_title)
    fig.update_yaxes(title_text=axis_title(y_obj, y_fmt))
    if x_log:
        fig.update_xaxes(type="log", dtick="D2")
        caption.append(f"<code>{esc(x_name)}</code> on a log scale (it spans over 20x).")
    _layout(fig, 480)
    if x_obj is None:
        caption.insert(0, "One objective: it is plotted against the evaluation number, and the "
                          "staircase is the best value found so far.")  # fmt: skip
    elif len(objectives) > 2:
        caption.insert(0, f"{len(objectives)} objectives: the front is non-dominated in all of "
                          "them, so its projection here is not a staircase and is not drawn as "
                          "one.")  # fmt: skip
    else:
        stairs_note = (
            "The staircase bounds what the evaluated sub-networks achieve: no network sits "
            "on its flat stretches between front points."
        )
        caption.insert(0, stairs_note)
    return FrontPlot(fig, " ".join(caption))


def _staircase(
    front: list[dict], feasible: list[Mapping[str, Any]], x_obj: Objective | None,
    y_obj: Objective, x_name: str, all_x: list[float], all_y: list[float],
) -> tuple[list[float], list[float], str] | None:  # fmt: skip
    """The attainment boundary of the front, extended to the edge of the evaluated points.

    With points in increasing x: a "min" x steps across then up or down ("hv"), a "max" x
    steps up or down then across ("vh"). With one objective it is the best so far."""
    if x_obj is None:
        xs, ys, best = [], [], None
        for e in sorted(feasible, key=lambda e: e["metrics"]["_index"]):
            v = e["metrics"].get(y_obj.name)
            if not finite(v):
                continue
            if best is None or y_obj.to_min(v) < y_obj.to_min(best):
                best = v
                xs.append(e["metrics"]["_index"])
                ys.append(v)
        if not xs:
            return None
        return [*xs, max(all_x)], [*ys, ys[-1]], "hv"
    if not front or not all_x:
        return None
    points = sorted((f["metrics"][x_name], f["metrics"][y_obj.name]) for f in front)
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    worst_y = max(all_y) if y_obj.direction == "min" else min(all_y)
    if x_obj.direction == "min":
        return [xs[0], *xs, max(all_x)], [worst_y, *ys, ys[-1]], "hv"
    return [min(all_x), *xs, xs[-1]], [ys[0], *ys, worst_y], "vh"


def _exported_trace(
    fig: go.Figure, summary: Mapping[str, Any], front: list[dict],
    exported_by_key: Mapping[str, list[str]], formats: Mapping[str, MetricFormat],
    order: Sequence[str], xy: Any,
) -> None:  # fmt: skip
    by_key = {f["key"]: f for f in front}
    knee = summary.get("knee")
    points = []
    for key, labels in exported_by_key.items():
        entry = by_key.get(key)
        if entry is None:
            continue
        x, y = xy(entry["metrics"])
        points.append((x, y, labels, entry, key == knee))
    if knee in by_key and knee not in exported_by_key:
        x, y = xy(by_key[knee]["metrics"])
        points.append((x, y, ["knee"], by_key[knee], True))
    if not points:
        return
    fig.add_trace(go.Scatter(
        x=[p[0] for p in points], y=[p[1] for p in points], mode="markers+text",
        name="exported", text=[esc(", ".join(p[2])) for p in points],
        textposition="top center", textfont={"size": 11, "color": "#7a2e0e"},
        marker={"symbol": ["star" if p[4] else "diamond" for p in points],
                "size": [17 if p[4] else 13 for p in points],
                "color": [KNEE if p[4] else EXPORT for p in points],
                "line": {"color": "white", "width": 1.5}},
        hoverinfo="text",
        hovertext=[hover_text(p[3].get("label", ""), p[3]["metrics"], formats, order,
                              "exported: " + ", ".join(p[2])) for p in points],
    ))  # fmt: skip


def _limits(
    fig: go.Figure, objectives: Sequence[Objective], constraints: Sequence[Objective],
    x_name: str, y_obj: Objective, formats: Mapping[str, MetricFormat], x_log: bool,
    values: tuple[Sequence[float], Sequence[float]],
) -> list[str]:  # fmt: skip
    """Dashed lines for limits on the plotted metrics that fall near the evaluated points; a
    caption line for the others (a far limit drawn would squeeze every point into a corner)."""
    drawn, elsewhere, beyond = [], [], []
    for limit in [*objectives, *constraints]:
        if limit.limit is None:
            continue
        fmt = formats.get(limit.name) or MetricFormat(limit.name)
        op = "≤" if limit.direction == "min" else "≥"
        text = f"{esc(limit.name)} {op} {esc(fmt.compact(limit.limit))}"
        line = {"dash": "dash", "color": LIMIT, "width": 1.3}
        font = {"color": LIMIT, "size": 11}
        axis = values[0] if limit.name == x_name else values[1] if limit.name == y_obj.name else ()
        if axis and not _near(limit.limit, axis, x_log and limit.name == x_name):
            beyond.append(text)
        elif limit.name == x_name:
            fig.add_vline(x=limit.limit, line=line)
            # annotations on a log axis take log10 of the position (shapes do not)
            x = math.log10(limit.limit) if x_log and limit.limit > 0 else limit.limit
            fig.add_annotation(x=x, xref="x", y=1, yref="paper", yanchor="top", xanchor="right",
                               text=text + " ", showarrow=False, font=font)  # fmt: skip
            drawn.append(text)
        elif limit.name == y_obj.name:
            fig.add_hline(y=limit.limit, line=line)
            fig.add_annotation(x=1, xref="paper", y=limit.limit, yref="y", yanchor="bottom",
                               xanchor="right", text=text, showarrow=False, font=font)  # fmt: skip
            drawn.append(text)
        else:
            elsewhere.append(text)
    notes = []
    if drawn:
        notes.append("Dashed red lines: the limits " + ", ".join(drawn) + ".")
    if elsewhere:
        notes.append("Limits on metrics not plotted here: " + ", ".join(elsewhere) +
                     "; evaluations outside any limit are drawn as crosses.")  # fmt: skip
    elif drawn:
        notes.append("Evaluations outside a limit are drawn as crosses.")
    if beyond:
        notes.append("Limits far from every evaluated point, not drawn: " + ", ".join(beyond) +
                     ".")  # fmt: skip
    return notes


def _near(limit: float, values: Sequence[float], log: bool) -> bool:
    """Whether drawing ``limit`` keeps the evaluated points readable: within half the span
    of the values beyond them (a factor of the span's ratio on a log axis)."""
    low, high = min(values), max(values)
    if log and low > 0 and limit > 0:
        reach = math.sqrt(high / low)
        return low / reach <= limit <= high * reach
    reach = max((high - low) / 2, abs(high) * 0.05, 1e-12)
    return low - reach <= limit <= high + reach


def hypervolume_figure(curve: Sequence[float], scale: Scale | None) -> go.Figure:
    fig = go.Figure(go.Scatter(
        x=list(range(1, len(curve) + 1)), y=list(curve), mode="lines", name="hypervolume",
        line={"color": ACCENT, "width": 2, "shape": "hv"}, fill="tozeroy",
        fillcolor="rgba(79,70,229,0.08)",
        hovertemplate="evaluation %{x}<br>hypervolume %{y:.3f}<extra></extra>",
    ))  # fmt: skip
    _layout(fig, 320, showlegend=False)
    fig.update_layout(margin={"l": 56, "r": 16, "t": 16, "b": 48})
    fig.update_xaxes(title_text="evaluations", rangemode="tozero")
    fig.update_yaxes(title_text="normalised hypervolume", range=[0, 1.02], tickformat=".1f")
    return fig


def training_figure(training: Sequence[Mapping[str, Any]]) -> go.Figure | None:
    rows = [r for r in training if finite(r.get("loss")) and finite(r.get("epoch"))]
    if not rows:
        return None
    fig = go.Figure()
    phases = list(dict.fromkeys(str(r.get("phase", "")) for r in rows))
    palette = [ACCENT, "#0e9384", "#c11574", "#e8590c", "#2e90fa", "#7a5af8"]
    for n, phase in enumerate(phases):
        mine = [r for r in rows if str(r.get("phase", "")) == phase]
        fig.add_trace(go.Scatter(
            x=[r["epoch"] for r in mine], y=[r["loss"] for r in mine], mode="lines+markers",
            name=esc(phase or "training"), line={"color": palette[n % len(palette)], "width": 2},
            marker={"size": 6}, hoverinfo="text",
            hovertext=[_training_hover(r) for r in mine],
        ))  # fmt: skip
    _layout(fig, 320, showlegend=len(phases) > 1)
    fig.update_layout(margin={"l": 56, "r": 16, "t": 16 if len(phases) == 1 else 36, "b": 48})
    fig.update_xaxes(title_text="epoch", dtick=1 if len(rows) <= 20 else None)
    fig.update_yaxes(title_text="training loss")
    return fig


def _training_hover(row: Mapping[str, Any]) -> str:
    lines = [f"<b>epoch {esc(row['epoch'])}</b>" + (f" · {esc(row['phase'])}" if row.get("phase")
                                                     else "")]  # fmt: skip
    units = {"train_accuracy": "%", "seconds": " s", "samples_per_second": " samples/s"}
    for name, value in row.items():
        if name in ("epoch", "phase") or not finite(value):
            continue
        text = f"{value:,.1f}" if abs(value) >= 100 or name == "seconds" else f"{value:.4g}"
        lines.append(f"{esc(name)}: {text}{units.get(name, '')}")
    return "<br>".join(lines)
