"""``report.html``: one self-contained page (plotly.js inline, works offline) about one run.

Panels, top to bottom: headline figures; the front over every evaluated sub-network; the
front as a table (short labels, metrics with units, knee and export badges, file links);
the exported models on the test split; hypervolume over evaluations and the training loss;
provenance (version, command, device, data splits, stage times); the full settings.

Everything comes from ``summary`` (the dict written to ``summary.json``) and the list of
evaluations; metric units and formats come from ``summary["metrics"]``. All user text is
HTML-escaped. The page is never wider than the viewport: tables fold secondary columns on
tablets and stack rows into cards on phones.
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from hwnas.files import write_atomic
from hwnas.pareto import Objective
from hwnas.report.figures import (
    front_figure,
    hypervolume_figure,
    iqr_name,
    training_figure,
)
from hwnas.report.format import (
    MISSING,
    MetricFormat,
    finite,
    metric_formats,
    quantity,
    scalar,
    seconds,
)
from hwnas.report.hypervolume import counted_mask, hypervolume_curve, hypervolume_scale
from hwnas.report.style import CSS

__all__ = ["render_report", "write_report"]

_SCHEME = re.compile(r"^\s*[A-Za-z][A-Za-z0-9+.-]*:")


def write_report(path: Path, summary: dict, evaluations: Sequence[dict]) -> None:
    """Write the run's report to ``path`` in one step (``evaluations``: every evaluated
    sub-network in evaluation order, ``{"key", "label", "metrics"}``, metrics ``None`` for an
    invalid arch)."""
    write_atomic(path, render_report(summary, evaluations))


def e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _breakable(name: str) -> str:
    """A metric name that may wrap after its underscores (``next_token_<wbr>accuracy``)."""
    return "_<wbr>".join(e(part) for part in str(name).split("_"))


def _href(path: Any) -> str | None:
    """Only relative file paths become links (no ``javascript:`` or other schemes)."""
    if not isinstance(path, str) or not path or _SCHEME.match(path):
        return None
    return e(path)


def _when(created: Any) -> str:
    """``2026-12-01T12:34:56Z`` as ``2026-12-01 12:34 UTC``."""
    try:
        when = datetime.fromisoformat(str(created))
    except ValueError:
        return str(created or "")
    zone = "UTC" if when.utcoffset() == timedelta(0) else when.strftime("%z")
    return f"{when:%Y-%m-%d %H:%M} {zone}".rstrip()


def _objectives(rows: Sequence[Mapping[str, Any]]) -> list[Objective]:
    return [Objective(r["name"], r.get("direction", "min"), r.get("limit")) for r in rows]


class _Report:
    def __init__(self, summary: Mapping[str, Any], evaluations: Sequence[Mapping[str, Any]]):
        self.s = summary
        self.evaluations = [dict(ev) for ev in evaluations]
        for ev in self.evaluations:
            ev.setdefault("label", ev.get("key", ""))
        self.objectives = _objectives(summary.get("objectives") or [])
        self.constraints = _objectives(summary.get("constraints") or [])
        self.meta = summary.get("metrics") or {}
        self.front = [dict(f) for f in summary.get("front") or []]
        labels = {ev["key"]: ev["label"] for ev in self.evaluations}
        for f in self.front:
            f.setdefault("label", labels.get(f["key"], f["key"]))
        self.exported = summary.get("exported") or {}
        self.exported_by_key: dict[str, list[str]] = {}
        for label, model in self.exported.items():
            self.exported_by_key.setdefault(model.get("key", ""), []).append(label)
        self.knee = summary.get("knee")
        rows = [ev["metrics"] for ev in self.evaluations]
        rows += [f.get("metrics") for f in self.front]
        for model in self.exported.values():
            rows += [model.get("metrics"), model.get("test")]
            rows.append({"latency_ms": model.get("exported_latency_ms"),
                         "latency_iqr_ms": model.get("exported_latency_iqr_ms")}
                        if "exported_latency_ms" in model else None)  # fmt: skip
        rows = [{k: v for k, v in r.items() if finite(v)} for r in rows if r]
        self.formats = metric_formats(self.meta, rows)
        limited = [o.name for o in [*self.objectives, *self.constraints]]
        seen = list(dict.fromkeys(n for r in rows for n in r))
        self.order = [n for n in dict.fromkeys([*limited, *self.meta, *seen]) if n in seen]
        quality = [n for n, m in self.meta.items() if isinstance(m, Mapping) and m.get("split")]
        self.primary = {*limited, *quality}
        self.ok = counted_mask(
            [ev["metrics"] for ev in self.evaluations], self.objectives, self.constraints
        )
        self.figures = 0

    # -- pieces -----------------------------------------------------------------------
    def fmt(self, name: str) -> MetricFormat:
        return self.formats.get(name) or MetricFormat(name, self.meta.get(name))

    def plot(self, fig: Any, div_id: str, height: int) -> str:
        self.figures += 1
        return fig.to_html(
            full_html=False,
            include_plotlyjs=self.figures == 1,
            div_id=div_id,
            default_width="100%",
            default_height=f"{height}px",
            config={
                "responsive": True,
                "displaylogo": False,
                "modeBarButtonsToRemove": ["lasso2d", "select2d"],
            },  # fmt: skip
        )

    def header_cell(self, name: str, extra_class: str = "", split: str | None = None) -> str:
        fmt = self.fmt(name)
        notes = []
        for o in self.objectives:
            if o.name == name:
                notes.append("↓ min" if o.direction == "min" else "↑ max")
        for o in [*self.objectives, *self.constraints]:
            if o.name == name and o.limit is not None:
                op = "≤" if o.direction == "min" else "≥"
                notes.append(f"{op} {fmt.compact(o.limit)}")
        split = split or fmt.split
        if split:
            notes.append(str(split))
        classes = " ".join(c for c in ("num", extra_class) if c)
        title = f' title="{e(fmt.description)}"' if fmt.description else ""
        unit = f'<span class="u">{e(fmt.unit)}</span>' if fmt.unit and fmt.unit != name else ""
        note = f'<span class="d">{e(" · ".join(notes))}</span>' if notes else ""
        return f'<th class="{classes}"{title}>{_breakable(name)}{unit}{note}</th>'

    def data_label(self, name: str, split: str | None = None) -> str:
        fmt = self.fmt(name)
        text = name + (f" ({fmt.unit})" if fmt.unit and fmt.unit != name else "")
        return e(text + (f", {split}" if split else ""))

    def value_cell(
        self, name: str, metrics: Mapping[str, Any], extra_class: str = "", below: str = "",
        split: str | None = None,
    ) -> str:  # fmt: skip
        fmt = self.fmt(name)
        inner = f'<span class="m">{e(fmt.number(metrics.get(name)))}</span>'
        spread = iqr_name(name)
        if spread and finite(metrics.get(spread)):
            inner += f'<span class="iqr">IQR {e(self.fmt(spread).number(metrics[spread]))}</span>'
        inner += below
        classes = " ".join(c for c in ("num", extra_class) if c)
        label = self.data_label(name, split)
        return f'<td class="{classes}" data-label="{label}"><span class="v">{inner}</span></td>'

    def badges(self, key: str, links: bool = True) -> str:
        """Knee and export badges, each export followed by links to its files."""
        labels = list(self.exported_by_key.get(key, []))
        out = []
        if key == self.knee and "knee" not in labels:
            out.append('<span class="badge knee" title="the knee of the front">knee</span>')
        for label in labels:
            cls = "badge knee" if label == "knee" else "badge"
            badge = f'<span class="{cls}" title="exported as {e(label)}">{e(label)}</span>'
            files = self.file_links(self.exported[label]) if links else ""
            out.append(f'<span class="export">{badge}{files}</span>')
        return f'<div class="badges">{"".join(out)}</div>' if out else ""

    def file_links(self, model: Mapping[str, Any], names: bool = False) -> str:
        """Links to an export's ONNX and JSON files (by file name, or by kind)."""
        links = []
        for field in ("onnx", "json"):
            href = _href(model.get(field))
            if href:
                text = e(Path(str(model[field])).name) if names else field.upper()
                links.append(f'<a href="{href}" title="{e(model[field])}" download>{text}</a>')
        return f'<span class="links">{" · ".join(links)}</span>' if links else ""

    def all_metrics(self, metrics: Mapping[str, Any]) -> str:
        items = "".join(
            f"<dt>{e(n)}</dt><dd>{e(self.fmt(n).text(metrics[n]))}</dd>"
            for n in self.order
            if n in metrics
        )
        return f'<dl class="mini">{items}</dl>'

    def objective_summary(self, metrics: Mapping[str, Any]) -> str:
        return ", ".join(self.fmt(o.name).text(metrics.get(o.name)) for o in self.objectives)

    # -- panels -----------------------------------------------------------------------
    def head(self) -> str:
        s = self.s
        task = s.get("task") or {}
        supernet = s.get("supernet") or {}
        settings = s.get("settings") or {}
        search = settings.get("search", settings)
        searcher = search.get("searcher") if isinstance(search, Mapping) else None
        what = " on ".join(str(task[k]) for k in ("task", "data") if task.get(k))
        what = task.get("name") or what or task.get("function")
        parts = [
            f"task {what}" if what else "",
            f"super-network {supernet['name']}" if supernet.get("name") else "",
            f"searcher {searcher}" if searcher else "",
            _when(s.get("created")),
            f"hwnas {s.get('hwnas_version', MISSING)}",
        ]
        sub = "".join(f"<span>{e(p)}</span>" for p in parts if p)
        valid = sum(ev["metrics"] is not None for ev in self.evaluations)
        within = sum(self.ok)
        total = (s.get("time_seconds") or {}).get("total")
        times = s.get("time_seconds") or {}
        stage_note = " · ".join(
            f"{e(k)} {float(v):,.0f} s" for k, v in times.items() if k != "total" and finite(v)
        )
        knee = next((f for f in self.front if f["key"] == self.knee), None)
        kpis = [
            ("Evaluated", f"{s.get('evaluations', len(self.evaluations)):,}",
             f"{valid:,} valid · {within:,} within limits"),
            ("Pareto front", f"{len(self.front):,}", "non-dominated sub-networks"),
            ("Knee", knee["label"] if knee else MISSING,
             self.objective_summary(knee["metrics"]) if knee else ""),
            ("Total time", f"{float(total) / 60:.1f} min" if finite(total) else MISSING,
             stage_note),
        ]  # fmt: skip
        cards = "".join(
            f'<div class="kpi"><div class="k">{e(k)}</div><div class="v">{e(v)}</div>'
            f'<div class="n">{n if k == "Total time" else e(n)}</div></div>'
            for k, v, n in kpis
        )
        return (
            f'<header><h1>{e(s.get("title") or "hwnas run")}</h1><p class="sub">{sub}</p>'
            f'<div class="kpis">{cards}</div></header>'
        )

    def split_text(self, name: str) -> str:
        split = (self.s.get("splits") or {}).get(name)
        if not isinstance(split, Mapping):
            return MISSING
        text = quantity(split.get("size"), str(split.get("unit", "")))
        if finite(split.get("items")):
            text += f" in {round(split['items']):,} {split.get('item_unit', 'items')}"
        return text

    def validation_note(self, short: bool = False) -> str:
        quality = [n for n in self.order if (self.meta.get(n) or {}).get("split") == "val"]
        names = ", ".join(f"<code>{e(n)}</code>" for n in quality) or "quality metrics"
        val, test = e(self.split_text("val")), e(self.split_text("test"))
        if short:
            return (
                f"Search metrics ({names}) are on the validation split, {val}, which also chose "
                f"the front; the held-out test split, {test}, is reported for the "
                '<a href="#exported">exported models</a> only.'
            )
        return (
            f"The search's quality metrics ({names}) are measured on the <b>validation "
            f"split</b>, {val}: the same split chose the front and the exported models, so on "
            f"the front they are slightly optimistic. The <b>test split</b>, {test}, is never "
            "seen by the search; it is reported only for the exported models."
        )

    def front_panel(self) -> str:
        if not self.objectives:
            return ""
        plot = front_figure(
            self.s, self.evaluations, self.objectives, self.constraints, self.formats,
            self.order, self.exported_by_key,
        )  # fmt: skip
        return (
            '<section class="card" id="front"><h2>Pareto front</h2>'
            '<p class="lead">Every evaluated sub-network (grey), the front (indigo) and the '
            "exported models (stars and diamonds). Hover a point for its metrics.</p>"
            f'<div class="plot">{self.plot(plot.figure, "front-plot", 480)}</div>'
            f'<p class="caption">{plot.caption}</p></section>'
        )

    def front_table(self) -> str:
        folded = {iqr_name(n) for n in self.order} - {None}
        names = [n for n in self.order if n not in folded
                 and any(finite(f["metrics"].get(n)) for f in self.front)]  # fmt: skip
        head = "".join(self.header_cell(n, "" if n in self.primary else "sec") for n in names)
        first = self.objectives[0] if self.objectives else None

        def rank(f: Mapping[str, Any]) -> float:
            v = f["metrics"].get(first.name) if first else None
            return first.to_min(float(v)) if finite(v) else math.inf

        body = []
        for f in sorted(self.front, key=rank):
            key = f["key"]
            cells = "".join(
                self.value_cell(n, f["metrics"], "" if n in self.primary else "sec") for n in names
            )
            row_class = ' class="knee"' if key == self.knee else ""
            body.append(
                f'<tr{row_class}><td class="label"><div class="name">{e(f["label"])}</div>'
                f'{self.badges(key)}<details class="key"><summary>all metrics, arch key'
                f'</summary>{self.all_metrics(f["metrics"])}<div class="k">{e(key)}</div>'
                f"</details></td>{cells}</tr>"
            )
        first_text = f"sorted by <code>{e(first.name)}</code>, best first" if first else "the front"
        return (
            '<section class="card" id="front-table"><h2>The front</h2>'
            f'<p class="lead">{len(self.front):,} sub-networks, {first_text}; validation '
            "metrics as searched. Open a row's <i>all metrics, arch key</i> for every metric "
            "and the full architecture key; hover a header for the metric's definition.</p>"
            f'<table class="stack front"><thead><tr><th class="label">sub-network</th>{head}'
            f"</tr></thead><tbody>{''.join(body)}</tbody></table>"
            "</section>"
        )

    def exported_table(self) -> str:
        if not self.exported:
            return ""
        tests = list(dict.fromkeys(
            n for m in self.exported.values() for n in (m.get("test") or {})
        ))  # fmt: skip
        tests = [n for n in self.order if n in tests] + [n for n in tests if n not in self.order]
        first_label = {}
        for label, model in self.exported.items():
            first_label.setdefault(model.get("key"), label)
        head = "".join(self.header_cell(n, split="test") for n in tests)
        rows = []
        for label, model in self.exported.items():
            test = model.get("test") or {}
            val = model.get("metrics") or {}
            cells = "".join(
                self.value_cell(
                    n, test, below=f'<span class="val">val {e(self.fmt(n).number(val[n]))}'
                    "</span>" if finite(val.get(n)) else "", split="test",
                )
                for n in tests
            )  # fmt: skip
            latency = {"latency_ms": model.get("exported_latency_ms"),
                       "latency_iqr_ms": model.get("exported_latency_iqr_ms")}  # fmt: skip
            lat = self.fmt("latency_ms")
            lat_text = f'<span class="m">{e(lat.number(latency["latency_ms"]))}</span>'
            if finite(latency["latency_iqr_ms"]):
                lat_text += (
                    f'<span class="iqr">IQR {e(lat.number(latency["latency_iqr_ms"]))}</span>'
                )
            searched = val.get("latency_ms")
            if finite(searched):
                lat_text += f'<span class="val">searched {e(lat.number(searched))}</span>'
            size = model.get("bytes")
            size_text = quantity(size, "bytes") if finite(size) else MISSING
            digest = str(model.get("sha256") or "")
            same = first_label.get(model.get("key"))
            note = (
                f'<div class="n caption">same sub-network as {e(same)}</div>'
                if same != label else ""
            )  # fmt: skip
            diff = model.get("max_abs_diff")
            rows.append(
                f'<tr><td class="label"><div class="badges"><span class="badge'
                f'{" knee" if label == "knee" else ""}">{e(label)}</span></div>'
                f'<div class="name">{e(model.get("label", ""))}</div>{note}</td>{cells}'
                f'<td class="num" data-label="exported latency ({e(lat.unit)})">'
                f'<span class="v">{lat_text}</span></td>'
                f'<td class="num sec" data-label="max |diff| vs PyTorch"><span class="v">'
                f"{e(MetricFormat('d', {}, [diff]).number(diff))}</span></td>"
                f'<td class="files" data-label="ONNX file"><span class="v">'
                f"{self.file_links(model, names=True) or MISSING}"
                f'<span class="val">{e(size_text)}</span></span></td>'
                f'<td data-label="sha256"><span class="v"><code title="{e(digest)}">'
                f"{e(digest[:12]) or MISSING}</code></span></td></tr>"
            )
        return (
            '<section class="card" id="exported"><h2>Exported models on the test split</h2>'
            '<p class="lead">Quality on the held-out test split (with the validation value the '
            "search saw beneath it), latency measured again on the exported ONNX file, and the "
            "largest output difference between the ONNX file and PyTorch.</p>"
            f'<table class="stack exported"><thead><tr><th class="label">model</th>{head}'
            '<th class="num">exported latency<span class="u">ms</span></th>'
            '<th class="num sec">max |diff|<span class="u">vs PyTorch</span></th>'
            '<th class="files">ONNX file</th><th>sha256</th></tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></section>"
        )

    def progress_panels(self) -> str:
        curve = hypervolume_curve(
            [ev["metrics"] for ev in self.evaluations], self.objectives, self.constraints
        )
        scale = hypervolume_scale(
            [ev["metrics"] for ev in self.evaluations], self.objectives, self.constraints
        )
        if scale is None:
            hv_caption = "No evaluation meets every limit, so no hypervolume is defined."
        else:
            ref = ", ".join(
                f"<code>{e(o.name)}</code> = {e(self.fmt(o.name).text(r))}"
                for o, r in zip(scale.objectives, scale.reference, strict=True)
            )
            ideal = ", ".join(
                e(self.fmt(o.name).text(v))
                for o, v in zip(scale.objectives, scale.ideal, strict=True)
            )
            hv_caption = (
                f"Each objective is scaled to [0, 1] by the range of the {scale.counted:,} "
                "evaluations that count (valid and within every limit; the others leave the "
                f"curve flat). Reference point, the worst of each among them: {ref}. Ideal "
                f"point: {ideal}. 1 would mean one sub-network best in every objective at "
                f"once; this run ends at <b>{curve[-1]:.3f}</b>."
            )
        hv = self.plot(hypervolume_figure(curve, scale), "hypervolume-plot", 320)
        training = training_figure(self.s.get("training") or [])
        if training is None:
            train_html = '<p class="caption">No training epochs were recorded in this run.</p>'
        else:
            train_html = f'<div class="plot">{self.plot(training, "training-plot", 320)}</div>'
            epochs = self.s.get("training") or []
            spent = sum(float(r["seconds"]) for r in epochs if finite(r.get("seconds")))
            train_html += (
                f'<p class="caption">{len(epochs):,} epochs, {e(seconds(spent))} in all; '
                "the loss of the sub-networks trained each step (hover for accuracy and "
                "throughput).</p>"
            )
        return (
            '<div class="grid2 wrap2">'
            '<section class="card" id="hypervolume"><h2>Hypervolume over evaluations</h2>'
            f'<div class="plot">{hv}</div><p class="caption">{hv_caption}</p></section>'
            '<section class="card" id="training"><h2>Training</h2>'
            f"{train_html}</section></div>"
        )

    def provenance(self) -> str:
        s = self.s
        latency = s.get("latency") or {}
        run = [
            ("hwnas version", e(s.get("hwnas_version", MISSING))),
            ("created", e(s.get("created", MISSING))),
            ("command", f"<code>{e(s.get('command', MISSING))}</code>"),
            ("seed", e(scalar(s.get("seed")))),
            ("evaluations", e(f"{s.get('evaluations', len(self.evaluations)):,} evaluated, "
                              f"{sum(self.ok):,} within limits, {len(self.front):,} on the "
                              "front")),
        ]  # fmt: skip
        task = [(str(k), e(scalar(v))) for k, v in (s.get("task") or {}).items()]
        splits = [(name, e(self.split_text(name))) for name in (s.get("splits") or {})]
        search = [
            ("super-network", e((s.get("supernet") or {}).get("name", MISSING))),
            ("objectives", self._limits_text(self.objectives, True)),
            ("constraints", self._limits_text(self.constraints, False) or "none"),
        ]
        source = str(latency.get("source", MISSING))
        lat = [("source", e(source))]
        device = latency.get("device")
        if isinstance(device, Mapping):
            lat.append(("device", self._kv(device)))
        if isinstance(latency.get("settings"), Mapping):
            lat.append(("settings", self._kv(latency["settings"])))
        times = {k: v for k, v in (s.get("time_seconds") or {}).items() if finite(v)}
        return (
            '<section class="card prov" id="provenance"><h2>Provenance</h2>'
            f'<div class="note">{self.validation_note()}</div>'
            '<div class="grid2">'
            f"<div><h3>Run</h3>{self._dl(run)}<h3>Task</h3>{self._dl(task)}"
            f"<h3>Data splits</h3>{self._dl(splits)}</div>"
            f"<div><h3>Search</h3>{self._dl(search)}<h3>Latency</h3>{self._dl(lat)}"
            f"<h3>Stage times</h3>{self._times(times)}</div></div></section>"
        )

    def _limits_text(self, limits: Sequence[Objective], objective: bool) -> str:
        parts = []
        for o in limits:
            text = f"<code>{e(o.name)}</code>"
            if objective:
                text += " " + ("min" if o.direction == "min" else "max")
            if o.limit is not None:
                op = "≤" if o.direction == "min" else "≥"
                text += f" {op} {e(self.fmt(o.name).compact(o.limit))}"
            parts.append(text)
        return ", ".join(parts)

    @staticmethod
    def _dl(rows: Sequence[tuple[str, str]]) -> str:
        if not rows:
            return f'<p class="caption">{MISSING}</p>'
        items = "".join(f"<dt>{e(k)}</dt><dd>{v}</dd>" for k, v in rows)
        return f'<dl class="kv">{items}</dl>'

    def _kv(self, mapping: Mapping[str, Any]) -> str:
        rows = []
        for k, v in mapping.items():
            if isinstance(v, Mapping | list):
                v = json.dumps(v, default=str)
            rows.append((str(k), e(scalar(v))))
        return self._dl(rows)

    @staticmethod
    def _times(times: Mapping[str, float]) -> str:
        if not times:
            return f'<p class="caption">{MISSING}</p>'
        total = times.get("total") or sum(v for k, v in times.items() if k != "total")
        rows = []
        for k, v in times.items():
            width = 100 * float(v) / total if total else 0
            rows.append(
                f'<span>{e(k)}</span><span><span class="bar" style="display:block;'
                f'width:{min(100.0, width):.1f}%"></span></span>'
                f'<span class="t">{e(seconds(v))}</span>'
            )
        return f'<div class="times">{"".join(rows)}</div>'

    def settings(self) -> str:
        settings = self.s.get("settings") or {}
        try:
            import yaml

            text = yaml.safe_dump(settings, sort_keys=False, allow_unicode=True, width=90)
            kind = "YAML"
        except Exception:  # anything yaml will not write is still shown, as JSON
            text = json.dumps(settings, indent=2, default=str)
            kind = "JSON"
        return (
            '<section class="card" id="settings"><details class="settings"><summary>'
            f"Full settings of the run ({kind})</summary><pre>{e(text)}</pre></details>"
            "</section>"
        )

    def page(self) -> str:
        front = self.front_panel()  # first figure: it carries plotly.js
        body = "".join([
            self.head(),
            f'<div class="note">{self.validation_note(short=True)}</div>',
            front,
            self.front_table(),
            self.exported_table(),
            self.progress_panels(),
            self.provenance(),
            self.settings(),
        ])  # fmt: skip
        title = e(self.s.get("title") or "hwnas run")
        footer = e(f"hwnas {self.s.get('hwnas_version', '')} · {_when(self.s.get('created'))}")
        return (
            '<!doctype html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{title}</title><style>{CSS}</style></head><body><main>{body}"
            f"<footer>{footer}</footer></main></body></html>\n"
        )


def render_report(summary: Mapping[str, Any], evaluations: Sequence[Mapping[str, Any]]) -> str:
    """The report as one HTML string (what :func:`write_report` writes)."""
    return _Report(summary, evaluations).page()
