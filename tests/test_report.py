"""report.html: contents, formats, escaping, hypervolume, and (with Chromium) a real browser
rendering it at phone and desktop widths without script errors or horizontal overflow."""

from __future__ import annotations

import hashlib
import html
import json
import math
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from hwnas.pareto import Objective, knee_index, objective_matrix, pareto_mask
from hwnas.report.format import MetricFormat, integer, quantity, seconds, si
from hwnas.report.html import render_report, write_report
from hwnas.report.hypervolume import hypervolume_curve, hypervolume_scale

LONG = 300  # characters: real transformer arch keys are this long and unbreakable


# -- realistic fixtures ---------------------------------------------------------------------
def _text_arch(rng: np.random.Generator) -> tuple[dict, str, dict]:
    depth = int(rng.integers(1, 7))
    width = int(rng.choice([64, 96, 128, 192, 256]))
    heads = int(rng.choice([2, 4, 8]))
    attn = [str(rng.choice(["softmax", "sigmoid", "linear"])) for _ in range(6)]
    ffn = [str(rng.choice(["mlp", "glu", "moe"])) for _ in range(6)]
    arch = {"depth": depth, "width": width, "heads": heads, "context": 128}
    for i in range(6):
        arch[f"layer{i}_attention"] = attn[i]
        arch[f"layer{i}_feedforward"] = ffn[i]
        arch[f"layer{i}_expand"] = 4
    key = ";".join(f"{k}={json.dumps(v)}" for k, v in arch.items())
    short = "".join(a[0] for a in attn[:depth])
    label = f"{depth}L w{width} h{heads} {short}/{ffn[0]}"
    params = 260.0 * width + depth * (12.5 + (4 if "moe" in ffn[:depth] else 0)) * width**2
    latency = 0.06 + 3.2e-7 * params * (1.3 if "softmax" in attn[:depth] else 1.0)
    latency *= float(rng.lognormal(0, 0.08))
    bpb = 3.55 - 0.55 * math.log(params / 3e4) / math.log(40) + float(rng.normal(0, 0.05))
    metrics = {
        "bits_per_byte": bpb,
        "next_token_accuracy": 100 * (0.72 - bpb / 6.5) + float(rng.normal(0, 0.4)),
        "latency_ms": latency,
        "latency_iqr_ms": latency * float(rng.uniform(0.01, 0.06)),
        "latency_runs": float(rng.integers(60, 2000)),
        "macs": 128 * params * 1.1,
        "params": params,
        "size_bytes": 4 * params,
        "peak_memory_kb": 12.0 + params * 4 / 1024 * 0.08,
        "size_int8_bytes": params + 2048,
    }
    return arch, key, metrics | {"label": label}


def _image_arch(rng: np.random.Generator) -> tuple[dict, str, dict]:
    widths = [int(rng.choice([16, 24, 32])), int(rng.choice([24, 40])), int(rng.choice([40, 64]))]
    kernels = [int(rng.choice([3, 5, 7])) for _ in range(9)]
    resolution = int(rng.choice([24, 28, 32]))
    arch = {"resolution": resolution, **{f"width{i}": w for i, w in enumerate(widths)}}
    arch |= {f"kernel{i}": k for i, k in enumerate(kernels)}
    arch |= {f"expand{i}": int(rng.choice([3, 4, 6])) for i in range(9)}
    key = ";".join(f"{k}={json.dumps(v)}" for k, v in arch.items())
    label = f"r{resolution} w{'-'.join(map(str, widths))} k{max(kernels)}"
    params = 2000.0 + sum(w * w * 9 for w in widths) + 40 * sum(kernels)
    macs = params * (resolution / 4) ** 2
    metrics = {
        "accuracy": min(100.0, 88 + 8 * math.log(params / 2e4) + float(rng.normal(0, 1.2))),
        "latency_ms": 0.05 + macs * 2.2e-8,
        "latency_table_ms": 0.05 + macs * 2.1e-8,
        "macs": macs,
        "params": params,
        "size_bytes": 4 * params,
        "peak_memory_kb": resolution**2 * widths[0] * 4 / 1024,
    }
    return arch, key, metrics | {"label": label}


TEXT_METRICS = {
    "bits_per_byte": {"unit": "bits/byte", "integer": False, "split": "val",
                      "description": "cross-entropy of the next byte, in bits"},
    "next_token_accuracy": {"unit": "%", "integer": False, "split": "val",
                           "description": "share of bytes predicted exactly"},
    "latency_ms": {"unit": "ms", "integer": False,
                   "description": "median latency of one forward pass, batch 1"},
    "latency_iqr_ms": {"unit": "ms", "integer": False,
                       "description": "interquartile range of the timed runs"},
    "latency_runs": {"unit": "runs", "integer": True, "description": "timed runs"},
    "macs": {"unit": "MACs", "integer": True, "description": "multiply-accumulates"},
    "params": {"unit": "params", "integer": True, "description": "parameters"},
    "size_bytes": {"unit": "bytes", "integer": True, "description": "float32 weights"},
    "peak_memory_kb": {"unit": "KiB", "integer": False, "description": "peak live tensors"},
    "size_int8_bytes": {"unit": "bytes", "integer": True, "description": "int8 weights"},
}  # fmt: skip
IMAGE_METRICS = {
    "accuracy": {"unit": "%", "integer": False, "split": "val",
                 "description": "top-1 accuracy"},
    "latency_ms": {"unit": "ms", "integer": False, "description": "profiled latency"},
    "latency_table_ms": {"unit": "ms", "integer": False, "description": "sum of layer times"},
    "macs": {"unit": "MACs", "integer": True, "description": "multiply-accumulates"},
    "params": {"unit": "params", "integer": True, "description": "parameters"},
    "size_bytes": {"unit": "bytes", "integer": True, "description": "float32 weights"},
    "peak_memory_kb": {"unit": "KiB", "integer": False, "description": "peak live tensors"},
}  # fmt: skip


def make_run(kind: str = "text", n: int = 80, seed: int = 0, key_suffix: str = "") -> tuple:
    """``(summary, evaluations)`` shaped as run.py writes them."""
    rng = np.random.default_rng(seed)
    draw = _text_arch if kind == "text" else _image_arch
    if kind == "text":
        objectives = [{"name": "bits_per_byte", "direction": "min", "limit": None},
                      {"name": "latency_ms", "direction": "min", "limit": 2.0}]  # fmt: skip
        constraints = [{"name": "params", "direction": "min", "limit": 1_000_000}]
        meta = TEXT_METRICS
    else:
        objectives = [{"name": "accuracy", "direction": "max", "limit": None},
                      {"name": "latency_ms", "direction": "min", "limit": None}]  # fmt: skip
        constraints = [{"name": "peak_memory_kb", "direction": "min", "limit": 96.0}]
        meta = IMAGE_METRICS
    evaluations, archs = [], {}
    for i in range(n):
        arch, key, metrics = draw(rng)
        label = metrics.pop("label")
        if i == 3:
            key = (key * 2)[:LONG] + key_suffix  # the long unbreakable key, and any payload
        if key in archs:
            continue
        archs[key] = arch
        evaluations.append({"key": key, "label": label, "metrics": metrics})
    evaluations.insert(5, {"key": "depth=9;width=999", "label": "9L w999 (failed)",
                           "metrics": None})  # fmt: skip
    objs = [Objective(**o) for o in objectives]
    limits = objs + [Objective(**c) for c in constraints]
    valid = [ev for ev in evaluations if ev["metrics"] is not None]
    feasible = [ev for ev in valid
                if all(o.to_min(ev["metrics"][o.name]) <= o.to_min(o.limit)
                       for o in limits if o.limit is not None)]  # fmt: skip
    F = objective_matrix([ev["metrics"] for ev in feasible], objs)
    front = [ev for ev, on in zip(feasible, pareto_mask(F), strict=True) if on]
    first = objs[0]
    front.sort(key=lambda ev: first.to_min(ev["metrics"][first.name]))
    knee = front[knee_index(objective_matrix([f["metrics"] for f in front], objs))]
    fastest = min(front, key=lambda ev: ev["metrics"]["latency_ms"])
    best = front[0]
    quality = first.name
    exported = {}
    labels = [("knee", knee), ("fastest", fastest), ("most_accurate", best),
              (f"best_{quality}", best)]  # fmt: skip
    for label, ev in labels:
        test = {quality: ev["metrics"][quality] + (0.03 if first.direction == "min" else -0.8)}
        if kind == "text":
            test["next_token_accuracy"] = ev["metrics"]["next_token_accuracy"] - 0.5
        exported[label] = {
            "key": ev["key"], "label": ev["label"], "onnx": f"models/{label}.onnx",
            "json": f"models/{label}.json",
            "sha256": hashlib.sha256(ev["key"].encode()).hexdigest(),
            "bytes": int(ev["metrics"]["size_bytes"] + 51234), "metrics": ev["metrics"],
            "test": test, "exported_latency_ms": ev["metrics"]["latency_ms"] * 1.02,
            "exported_latency_iqr_ms": ev["metrics"]["latency_ms"] * 0.015,
            "max_abs_diff": 3.1e-6,
        }  # fmt: skip
    if kind == "text":
        splits = {
            "train": {"size": 28651215, "unit": "bytes", "items": 1621, "item_unit": "files"},
            "val": {"size": 16384, "unit": "bytes", "items": 84, "item_unit": "files"},
            "test": {"size": 1523340, "unit": "bytes", "items": 85, "item_unit": "files"},
        }
        latency = {
            "source": "measured",
            "device": {"cpu": "AMD EPYC 7B13", "cpu_count": 2, "machine": "x86_64",
                       "os": "Linux-6.1.0-x86_64-with-glibc2.36", "python": "3.11.2",
                       "runtime": "onnxruntime 1.20.1", "threads": 1, "batch_size": 1},
            "settings": {"backend": "onnxruntime", "threads": 1, "batch_size": 1, "warmup": 10,
                         "min_runs": 10, "max_runs": 2000, "target_ci": 0.01,
                         "max_seconds": 2.0},
        }  # fmt: skip
        task = {"name": "python", "context": 128, "vocabulary": 256}
        supernet = {"name": "transformer", "config": {"max_depth": 6, "widths": [64, 256]}}
        training = [{"epoch": i + 1, "phase": "sandwich", "loss": 2.6 * 0.86**i + 1.2,
                     "train_accuracy": 30.0 + 2.1 * i, "seconds": 33.1 + 0.3 * i,
                     "samples_per_second": 250.0 - i} for i in range(7)]  # fmt: skip
    else:
        splits = {"train": {"size": 1437, "unit": "images"},
                  "val": {"size": 270, "unit": "images"},
                  "test": {"size": 360, "unit": "images"}}  # fmt: skip
        latency = {"source": "profile:profiles/pixel.json",
                   "device": {"name": "pixel", "runtime": "tflite 2.16", "threads": 4},
                   "settings": {"batch_size": 1}}  # fmt: skip
        task = {"name": "digits", "classes": 10, "resolution": 32}
        supernet = {"name": "mobilenet", "config": {"widths": [16, 24, 40, 64]}}
        phases = ["full"] * 3 + ["elastic kernel"] * 3 + ["elastic depth"] * 3
        training = [{"epoch": i + 1, "phase": p, "loss": 2.2 * 0.8**i + 0.1,
                     "train_accuracy": 60.0 + 4 * i, "seconds": 12.0,
                     "samples_per_second": 120.0} for i, p in enumerate(phases)]  # fmt: skip
    summary = {
        "hwnas_version": "0.1.0",
        "created": "2026-12-01T12:34:56Z",
        "command": f"hwnas run --config examples/{kind}.yaml --out runs/demo",
        "seed": seed,
        "title": f"hwnas run: {task['name']}, {supernet['name']}, linas",
        "task": task,
        "splits": splits,
        "supernet": supernet,
        "objectives": objectives,
        "constraints": constraints,
        "metrics": meta,
        "front": [{"key": f["key"], "label": f["label"], "arch": archs[f["key"]],
                   "metrics": f["metrics"]} for f in front],  # fmt: skip
        "knee": knee["key"],
        "exported": exported,
        "evaluations": len(evaluations),
        "latency": latency,
        "training": training,
        "time_seconds": {"data": 1.2345678901234567, "train": 234.56789012345678,
                         "search": 84.6, "export": 3.1, "total": 323.4567890123456},
        "settings": {"seed": seed, "data": {"name": task["name"]},
                     "search": {"searcher": "linas", "budget": n,
                                "objectives": [f"{o['name']}:{o['direction']}"
                                               for o in objectives]},
                     "notes": "x" * 400},
    }  # fmt: skip
    return summary, evaluations


@pytest.fixture(scope="module")
def text_run() -> tuple:
    return make_run("text")


@pytest.fixture(scope="module")
def text_page(text_run) -> str:
    return render_report(*text_run)


def _front_table(page: str) -> str:
    return re.search(r'<table class="stack front">.*?</table>', page, re.S).group(0)


# -- formats ----------------------------------------------------------------------------------
def test_numbers_read_as_people_write_them():
    assert si(426600) == ("427", "k")
    assert si(1_234_567) == ("1.23", "M")
    assert si(999_999) == ("1.00", "M")
    assert integer(1621) == ("1,621", "")
    assert MetricFormat("macs", {"unit": "MACs", "integer": True}).text(4.266e5) == "427 k MACs"
    assert MetricFormat("size", {"unit": "bytes", "integer": True}).text(2.5e6) == "2.50 MB"
    assert MetricFormat("acc", {"unit": "%"}, [41.234, 40.1]).text(41.234) == "41.23%"
    assert MetricFormat("lat", {"unit": "ms"}, [0.1234, 2.0]).text(2.0) == "2.0000 ms"
    assert MetricFormat("d", {}).number(3e-6) == "3.0×10⁻⁶"
    assert MetricFormat("x", {}).number(float("nan")) == "—"
    assert seconds(234.56789012345678) == "234.6 s (3.9 min)"
    assert quantity(28651215, "bytes") == "28,651,215 bytes (28.7 MB)"
    assert quantity(1437, "images") == "1,437 images"


# -- contents ---------------------------------------------------------------------------------
def test_front_table_has_labels_units_and_readable_numbers(text_run, text_page):
    summary, _ = text_run
    table = _front_table(text_page)
    rows = re.findall(r"<tr[ >].*?</tr>", table.split("<tbody>")[1], re.S)
    assert len(rows) == len(summary["front"])
    for entry, row in zip(summary["front"], rows, strict=True):  # sorted by bits_per_byte
        assert html.escape(entry["label"]) in row
        assert html.escape(entry["key"]) in row  # the full key, inside <details>
    values = [f["metrics"]["bits_per_byte"] for f in summary["front"]]
    assert values == sorted(values)
    head = table.split("<tbody>")[0]
    for unit in ("bits/byte", "ms", "MACs", "bytes", "KiB"):
        assert f'<span class="u">{unit}</span>' in head
    assert head.index("bits_<wbr>per_<wbr>byte") < head.index("latency_<wbr>ms")
    assert head.index("latency_<wbr>ms") < head.index("macs")  # metrics first, objectives first
    assert not re.search(r"\de[+-]\d", table)  # no 4.266e+05
    assert not re.search(r"\d\.\d{6,}", table)  # no 16-digit floats


def test_knee_exports_and_links(text_run, text_page):
    summary, _ = text_run
    table = _front_table(text_page)
    knee_row = next(r for r in table.split("<tr") if html.escape(summary["knee"]) in r)
    assert 'class="knee"' in knee_row and ">knee</span>" in knee_row
    best = summary["exported"]["most_accurate"]["key"]
    best_row = next(r for r in table.split("<tr") if html.escape(best) in r)
    assert ">most_accurate</span>" in best_row and ">best_bits_per_byte</span>" in best_row
    for label, model in summary["exported"].items():
        assert f'href="{model["onnx"]}"' in text_page
        assert f'href="{model["json"]}"' in text_page
        assert model["sha256"][:12] in text_page
        assert f">{label}</span>" in text_page
    exported = re.search(r'<section class="card" id="exported">.*?</section>', text_page, re.S)
    assert "same sub-network as most_accurate" in exported.group(0)
    assert "test" in exported.group(0) and "next_<wbr>token_<wbr>accuracy" in exported.group(0)


def test_provenance_and_validation_note(text_run, text_page):
    summary, _ = text_run
    page = text_page
    for text in ("0.1.0", "2026-12-01T12:34:56Z", "hwnas run --config examples/text.yaml",
                 "onnxruntime 1.20.1", "AMD EPYC 7B13", "28,651,215 bytes (28.7 MB)",
                 "16,384 bytes (16.4 kB) in 84 files", "234.6 s", "323.5 s", "validation split",
                 "test split"):  # fmt: skip
        assert html.escape(text) in page, text
    assert "1.2345678" not in page
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    assert "Full settings of the run (YAML)" in page


def test_plotly_inline_once_and_no_network(text_page):
    assert text_page.count("<script") >= 3
    assert len(re.findall(r"plotly\.js v\d", text_page)) == 1  # the bundle's banner
    assert not re.search(r"<script[^>]*\ssrc=", text_page)
    assert '"responsive": true' in text_page


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _plot_data(page: str, div: str) -> list[dict]:
    start = re.search(rf'Plotly\.newPlot\(\s*"{div}",\s*', page).end()
    return json.JSONDecoder().raw_decode(page, start)[0]


def test_hover_labels_are_short(text_run, text_page):
    summary, evaluations = text_run
    assert len(evaluations[3]["key"]) >= LONG
    traces = _plot_data(text_page, "front-plot")
    hovers = [h for t in traces for h in t.get("hovertext") or []]
    assert len(hovers) >= len([ev for ev in evaluations if ev["metrics"]])
    strings = list(_strings(traces))
    for ev in evaluations:
        assert not any(ev["key"] in text for text in strings)
    assert f"<b>{evaluations[0]['label']}</b>" in hovers[0] or any(
        h.startswith(f"<b>{evaluations[0]['label']}</b>") for h in hovers
    )
    assert all(h.startswith("<b>") and len(h) < 600 for h in hovers)
    text = "".join(hovers)
    assert "bits_per_byte: " in text and " ms (IQR " in text and " M MACs" in text
    assert not re.search(r"\de[+-]\d", text)
    front = next(t for t in traces if t["name"] == "on the front")
    assert front["error_x"]["array"][0] == summary["front"][0]["metrics"]["latency_iqr_ms"] / 2
    stairs = next(t for t in traces if t["name"] == "Pareto front")
    assert stairs["line"]["shape"] == "hv"


def test_user_text_is_escaped(tmp_path):
    payload = '"><script>alert(1)</script><img src=x onerror=alert(2)>'
    summary, evaluations = make_run("text", n=30, key_suffix=payload)
    summary["title"] = payload
    summary["command"] = payload
    evaluations[3]["label"] = payload
    for f in summary["front"]:
        f["label"] = payload
    write_report(tmp_path / "report.html", summary, evaluations)
    page = (tmp_path / "report.html").read_text()
    assert "<script>alert" not in page and "<img src=x" not in page
    assert html.escape(payload) in page


def test_image_run_with_one_objective_renders(tmp_path):
    summary, evaluations = make_run("image", n=50, seed=1)
    page = render_report(summary, evaluations)
    assert "accuracy" in page and "profile:profiles/pixel.json" in page
    assert "1,437 images" in page
    summary["objectives"] = summary["objectives"][:1]
    page = render_report(summary, evaluations)
    assert "evaluation number" in page


def test_three_objectives_and_a_bare_summary_render():
    summary, evaluations = make_run("text", n=30, seed=2)
    summary["objectives"].append({"name": "macs", "direction": "min", "limit": None})
    traces = _plot_data(render_report(summary, evaluations), "front-plot")
    assert "Pareto front" not in [t["name"] for t in traces]  # no staircase in projection
    bare = {key: value for key, value in summary.items() if key in ("objectives", "metrics")}
    page = render_report(bare | {"front": [], "exported": {}, "training": []}, [])
    assert "No training epochs" in page and "No evaluation meets every limit" in page


# -- hypervolume ------------------------------------------------------------------------------
def test_hypervolume_curve_is_normalised_and_monotone(text_run):
    summary, evaluations = text_run
    objectives = [Objective(**o) for o in summary["objectives"]]
    constraints = [Objective(**c) for c in summary["constraints"]]
    metrics = [ev["metrics"] for ev in evaluations]
    curve = hypervolume_curve(metrics, objectives, constraints)
    assert len(curve) == len(metrics)
    assert all(0.0 <= v <= 1.0 for v in curve)
    assert all(b >= a for a, b in zip(curve, curve[1:], strict=False))
    assert 0.3 < curve[-1] < 1.0
    scale = hypervolume_scale(metrics, objectives, constraints)
    feasible = [m for m in metrics if m and m["params"] <= 1e6 and m["latency_ms"] <= 2.0]
    assert scale.counted == len(feasible)
    assert scale.reference[0] == max(m["bits_per_byte"] for m in feasible)
    assert scale.ideal[1] == min(m["latency_ms"] for m in feasible)


def test_hypervolume_ignores_invalid_and_infeasible():
    objectives = [Objective("q", "max"), Objective("t", "min", limit=5.0)]
    good = [{"q": 0.5, "t": 2.0}, {"q": 1.0, "t": 4.0}, {"q": 0.0, "t": 0.0},
            {"q": 0.9, "t": 2.0}]  # fmt: skip
    noise = [None, {"q": 99.0, "t": 6.0}, {"q": float("nan"), "t": 1.0}, {"t": 1.0}]
    clean = hypervolume_curve(good, objectives)
    # objectives scaled to the box of the good points: the first is (0.5, 0.5); the two
    # extremes sit on the reference in one objective each and add nothing; the last does
    assert clean == [0.25, 0.25, 0.25, 0.45]
    mixed = hypervolume_curve([good[0], *noise, *good[1:]], objectives)
    assert mixed == [clean[0]] * (1 + len(noise)) + clean[1:]
    assert hypervolume_curve([None, None], objectives) == [0.0, 0.0]
    # one objective, one point: best of the run in everything it is judged on
    assert hypervolume_curve([{"q": 1.0}], [Objective("q", "max")]) == [1.0]


# -- in a browser ----------------------------------------------------------------------------
# Headless Chromium will not make a window narrower than 500 px, so the report is measured in
# an iframe of the exact width (its own viewport: media queries and innerWidth follow it). The
# probe, injected first in <head>, records script errors and, after load and plotly's render,
# posts its measurements to the harness page, which writes them where --dump-dom shows them.
PROBE = """<script>(function(){
var errors=[];
window.addEventListener('error',function(ev){errors.push('error: '+(ev.message||ev.type));},true);
window.addEventListener('unhandledrejection',function(ev){errors.push('rejection: '+ev.reason);});
var original=console.error;
console.error=function(){errors.push('console: '+Array.prototype.join.call(arguments,' '));
  return original.apply(console,arguments);};
window.addEventListener('load',function(){setTimeout(function(){
  var right=0,widest='';
  document.querySelectorAll('body *').forEach(function(el){
    var r=el.getBoundingClientRect();
    if(r.width>0&&r.right>right){right=r.right;widest=el.tagName+'.'+el.className;}});
  var out={errors:errors,scrollWidth:document.documentElement.scrollWidth,
    bodyScrollWidth:document.body.scrollWidth,innerWidth:window.innerWidth,right:right,
    widest:String(widest),
    tables:Array.prototype.map.call(document.querySelectorAll('table'),function(t){
      var r=t.getBoundingClientRect();return {width:r.width,right:r.right};}),
    plots:document.querySelectorAll('.js-plotly-plot').length,
    svgs:document.querySelectorAll('.js-plotly-plot svg.main-svg').length,
    points:document.querySelectorAll('.js-plotly-plot .scatterlayer .point').length};
  parent.postMessage(JSON.stringify(out),'*');},1500);});
})();</script>"""
HARNESS = """<!doctype html><html><head><meta charset="utf-8">
<style>html,body{{margin:0}}iframe{{border:0;display:block}}</style></head><body>
<iframe src="{src}" style="width:{width}px;height:{height}px"></iframe>
<script>window.addEventListener('message',function(ev){{var pre=document.createElement('pre');
pre.id='probe';pre.textContent=ev.data;document.body.appendChild(pre);}});</script>
</body></html>"""

CHROMIUM = "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else shutil.which("chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars"]  # fmt: skip


def harness(page: Path, width: int, height: int, probed: bool = True) -> Path:
    """A page showing ``page`` in an iframe ``width`` px wide (with the probe, if ``probed``)."""
    if probed:
        copy = page.with_name(f"probed-{page.name}")
        copy.write_text(page.read_text().replace("<head>", "<head>" + PROBE, 1))
        page = copy
    outer = page.with_name(f"harness-{width}-{page.name}")
    outer.write_text(HARNESS.format(src=page.name, width=width, height=height))
    return outer


def chromium(page: Path, width: int, height: int, profile: Path, *args: str) -> str:
    command = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}",
               f"--window-size={max(width, 500)},{height}", "--virtual-time-budget=5000",
               *args, page.as_uri()]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    return done.stdout


def probe(page: Path, width: int, profile: Path) -> dict:
    dom = chromium(harness(page, width, 900), width, 900, profile, "--dump-dom")
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert found, f"no probe result from chromium at {width} px: {dom[-500:]}"
    return json.loads(html.unescape(found.group(1)))


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium)")
@pytest.mark.parametrize("kind", ["text", "image"])
def test_report_renders_in_a_browser_at_phone_and_desktop_widths(tmp_path, kind):
    summary, evaluations = make_run(kind, n=80 if kind == "text" else 40)
    page = tmp_path / f"{kind}.html"
    write_report(page, summary, evaluations)
    for width in (390, 1400):
        result = probe(page, width, tmp_path / "profile")
        assert result["errors"] == [], result
        assert result["innerWidth"] == width, result
        assert result["plots"] == 3 and result["svgs"] >= 3, result
        assert result["points"] > 0, result
        assert result["scrollWidth"] <= result["innerWidth"], result
        assert result["right"] <= result["innerWidth"] + 0.5, result
        for table in result["tables"]:
            assert table["width"] <= result["innerWidth"], result
            assert table["right"] <= result["innerWidth"], result


def test_a_limit_far_from_every_point_is_named_not_drawn():
    summary, evaluations = make_run("text")
    near = render_report(summary, evaluations)
    summary["objectives"][1]["limit"] = 1000.0  # ms, where no sub-network comes close
    far = render_report(summary, evaluations)
    assert "Limits far from every evaluated point, not drawn" in far
    assert "latency_ms ≤ 1,000 ms" in far
    assert "Limits far from every evaluated point" not in near
