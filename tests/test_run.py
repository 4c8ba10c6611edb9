import csv
import hashlib
import json
import stat
import subprocess
import sys

import pytest
import torch

from helpers import (
    FAST_LATENCY,
    FAST_LATENCY_CONFIG,
    cli,
    hwnas,
    image_spec,
    kill_when_stored,
    random_image_task,
)
from hwnas import __version__ as hwnas_version
from hwnas.config import RunConfig, TrainConfig, load_config
from hwnas.errors import HwnasError
from hwnas.evaluate.quality import recalibrate_batchnorm
from hwnas.export import export_subnet, read_metadata
from hwnas.families import build_family
from hwnas.families.mobilenet.memory import peak_activation_bytes
from hwnas.run import plan_run
from hwnas.store import Store
from hwnas.train import SandwichTrainer, resolve_settings

TINY = (
    """
seed: 0
supernet:
  overrides: {widths: [8, 12, 16, 16], expands: [1, 2], depths: [1, 2],
              kernels: [3, 5], resolutions: [16, 24], final_width: 32}
train: {epochs: 1, batch_size: 256}
search: {budget: BUDGET, calibration_images: 64, constraints: ["latency_ms <= 1000"]}
"""
    + f"latency: {FAST_LATENCY_CONFIG}\n"
)


def tiny_config(tmp_path, budget=6):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY.replace("BUDGET", str(budget)))
    return path


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("train: {epochs: 2, speed: 3}", "train.speed: Extra inputs are not permitted"),
        ("train: {epochs: many}", "train.epochs"),
        ("search: {objectives: ['accuracy:best']}", "accuracy:best"),
        ("search: {constraints: ['latency_ms < 2']}", "latency_ms < 2"),
        ("latency: {source: 'table'}", "expected measured or profile:FILE"),
        ("latency: {min_runs: 20, max_runs: 10}", "max_runs must be at least min_runs"),
        ("search: {constraints: ['accuracy <= 50']}", "its limit takes >="),
        ("search: {constraints: ['latency_ms <= nan']}", "latency_ms <= nan"),
        ("search: {objectives: []}", "at least one objective"),
        ("train: {progressive: true, epochs: 2}", "at least 4 epochs"),
        ("search: {options: {magic: 1}}", "search.options: searcher 'linas': bad option"),
        ("data: {name: mnist}", "data.name"),
        ("train: [1, 2", "not valid YAML"),
        ("latency: {device: board}", "latency.device: board is timed by its own Dask workers"),
        ("latency: {device: 'a b'}", "latency.device"),
        ("execution: {workers: 0}", "execution.workers"),
        ("execution: {scheduler: 'localhost:8786'}", "execution.scheduler"),
        ("execution: {tell_order: random}", "execution.tell_order"),
        ("execution: {workers: 4096}", "local workers on"),
    ],
)
def test_config_errors_are_one_line_exit_2_and_write_nothing(tmp_path, text, fragment):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    out = tmp_path / "out"
    r = cli("run", "--config", path, "--out", out)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0]
    assert str(path) in lines[0] or "search." in lines[0]  # says where: the file or the key
    assert not out.exists()


def test_unknown_objective_metric_is_refused_before_training(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("search: {objectives: ['acc:max', 'latency_ms:min']}")
    r = cli("run", "--config", path, "--out", tmp_path / "o")
    assert r.returncode == 2 and "no metric 'acc'" in r.stderr
    r = cli("run", "--constraint", "flops <= 3", "--out", tmp_path / "o")
    assert r.returncode == 2 and "search.constraints: no metric 'flops'" in r.stderr
    r = cli("run", "--objective", "accuracy:best", "--out", tmp_path / "o")
    assert r.returncode == 2 and r.stderr.startswith("hwnas: error: command line:")
    r = cli("run", "--latency", "profile:" + str(tmp_path / "none.json"), "--out", tmp_path / "o")
    assert r.returncode == 2 and "none.json: no such file" in r.stderr
    assert not (tmp_path / "o").exists()


def test_constraints_on_any_metric_are_split_from_objective_limits():
    search = RunConfig().search.model_copy(
        update={"constraints": ["latency_ms <= 2", "peak_memory_kb <= 64", "accuracy >= 50"]}
    )
    default = ["accuracy:max", "latency_ms:min"]
    limits = {o.name: o.limit for o in search.parsed_objectives(default)}
    assert limits == {"accuracy": 50.0, "latency_ms": 2.0}
    (memory,) = search.parsed_constraints(default)
    assert (memory.name, memory.direction, memory.limit) == ("peak_memory_kb", "min", 64.0)


def test_missing_config_and_data_paths(tmp_path):
    r = cli("run", "--config", tmp_path / "none.yaml", "--out", tmp_path / "o")
    assert r.returncode == 2 and "no such file" in r.stderr
    path = tmp_path / "c.yaml"
    path.write_text(f"data: {{name: cifar10, path: {tmp_path / 'nothing'}}}")
    r = cli("run", "--config", path, "--out", tmp_path / "o")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_default_objectives_are_the_tasks_quality_and_latency():
    objectives = plan_run(RunConfig()).objectives
    assert [(o.name, o.direction) for o in objectives] == [
        ("accuracy", "max"),
        ("latency_ms", "min"),
    ]
    with pytest.raises(HwnasError):
        load_config("/nonexistent.yaml")


def settings(model, task, **values) -> TrainConfig:
    return resolve_settings(TrainConfig(**values), type(model), type(task))


def test_training_is_deterministic_for_a_seed():
    task = random_image_task()
    overrides = {"widths": (4, 4, 8, 8), "depths": (1, 2), "expands": (1, 2),
                 "kernels": (3,), "resolutions": (16,), "final_width": 8}  # fmt: skip
    states = []
    for _ in range(2):
        torch.manual_seed(0)
        model = build_family("mobilenet", overrides, task.spec)
        SandwichTrainer(model, task, settings(model, task, epochs=1, batch_size=8)).fit()
        states.append(model.state_dict())
    for name, tensor in states[0].items():
        assert torch.equal(tensor, states[1][name]), name


def test_an_exported_mobilenet_takes_its_own_resolution_and_any_batch(tmp_path):
    import onnx
    import onnxruntime as ort

    model = build_family("mobilenet", None, image_spec()).eval()
    arch = model.space().make({**model.smallest_arch().to_dict(), "resolution": 24})
    module = model.extract(arch)
    recalibrate_batchnorm(module, torch.randn(32, 3, 32, 32))
    record = export_subnet(module, lambda n, g: model.deployed_input(arch, n, g),
                           tmp_path / "m.onnx", {"key": arch.key}, FAST_LATENCY)  # fmt: skip
    assert record["max_abs_diff"] <= 1e-4 and record["input"]["shape"] == ["batch", 3, 24, 24]
    graph = onnx.load(str(tmp_path / "m.onnx")).graph
    assert not [n for n in graph.node if n.op_type == "Resize"]  # no hidden resize
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    x = torch.randn(5, 3, 24, 24)
    with torch.no_grad():
        expected = module(x).numpy()
    assert abs(session.run(None, {"input": x.numpy()})[0] - expected).max() <= 1e-4
    assert read_metadata(tmp_path / "m.onnx") == {"key": arch.key, "input": record["input"]}
    assert json.loads((tmp_path / "m.json").read_text())["sha256"] == record["sha256"]


def test_run_end_to_end_and_resume_after_kill(tmp_path):
    config, out = tiny_config(tmp_path, budget=10), tmp_path / "run"
    job = subprocess.Popen([sys.executable, "-m", "hwnas.cli", "run", "--config", config,
                            "--out", out], stderr=subprocess.DEVNULL)  # fmt: skip
    kill_when_stored(job, out / "run.sqlite", "main", 3)
    with Store(out / "run.sqlite") as store:
        before = [e.arch_key for e in store.evaluations("main")]
    assert 3 <= len(before) < 10, "the run must be killed during the search"

    r = cli("run", "--config", config, "--out", out)
    assert r.returncode == 2 and "--resume" in r.stderr

    r = hwnas("run", "--config", config, "--out", out, "--resume")
    assert r.returncode == 0, r.stderr
    with Store(out / "run.sqlite") as store:
        after = [e.arch_key for e in store.evaluations("main")]
    assert len(after) == len(set(after)) == 10 and after[: len(before)] == before

    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["training"]) == 1  # training was not repeated on resume
    assert set(summary["time_seconds"]) >= {"train", "search", "export", "total"}
    assert summary["front"] and summary["knee"] in {f["key"] for f in summary["front"]}
    assert summary["latency"]["source"] == "measured" and summary["latency"]["device"]["cpu"]
    assert all(f["metrics"]["latency_runs"] >= 3 for f in summary["front"])
    assert summary["command"].startswith("hwnas run --config") and summary["seed"] == 0
    assert summary["hwnas_version"] == hwnas_version and summary["created"].endswith("Z")
    assert {s: v["unit"] for s, v in summary["splits"].items()} == dict.fromkeys(
        ("train", "val", "test"), "images"
    )
    assert summary["metrics"]["accuracy"]["split"] == "val"
    accuracies = [f["metrics"]["accuracy"] for f in summary["front"]]
    assert accuracies == sorted(accuracies, reverse=True)  # best first objective first
    for label in ("knee", "most_accurate", "fastest"):
        info = summary["exported"][label]
        path = out / info["onnx"]
        assert info["max_abs_diff"] <= 1e-4 and info["exported_latency_ms"] > 0
        assert hashlib.sha256(path.read_bytes()).hexdigest() == info["sha256"]
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
        resolution = next(f for f in summary["front"] if f["key"] == info["key"])["arch"][
            "resolution"
        ]
        assert info["input"]["shape"] == ["batch", 1, resolution, resolution]
        meta = read_metadata(path)
        assert meta["key"] == info["key"] and meta["test_metrics"] == info["test"]
        assert meta["preprocessing"]["class_names"] == [str(d) for d in range(10)]
        assert len(meta["preprocessing"]["mean"]) == len(meta["preprocessing"]["std"]) == 1
        assert json.loads((out / info["json"]).read_text())["sha256"] == info["sha256"]
    rows = list(csv.DictReader((out / "front.csv").open()))
    assert [r["key"] for r in rows] == [f["key"] for f in summary["front"]]
    assert [r["knee"] for r in rows].count("1") == 1
    assert all(r["macs"].isdigit() and r["params"].isdigit() for r in rows)
    assert "knee" in next(r["exported"] for r in rows if r["key"] == summary["knee"])
    assert "plotly" in (out / "report.html").read_text()


def test_train_then_run_reuses_the_checkpoint(tmp_path):
    config, out = tiny_config(tmp_path, budget=3), tmp_path / "run"
    r = hwnas("train", "--config", config, "--out", out)
    assert r.returncode == 0, r.stderr
    checkpoint = out / "supernet.safetensors"
    written = checkpoint.stat().st_mtime_ns
    r = cli("train", "--config", config, "--out", out)
    assert r.returncode == 2 and "--resume" in r.stderr
    r = hwnas("run", "--config", config, "--out", out)
    assert r.returncode == 0, r.stderr
    assert checkpoint.stat().st_mtime_ns == written  # complete: reused, not retrained
    again, reseeded = tmp_path / "again", tmp_path / "reseeded.yaml"
    again.mkdir()
    for part in out.glob(f"{checkpoint.name}*"):  # the weights and the optimizer's state
        (again / part.name).write_bytes(part.read_bytes())
    reseeded.write_text(config.read_text().replace("search: {", "search: {seed: 1, "))
    r = hwnas("run", "--config", reseeded, "--out", again)
    assert r.returncode == 0, r.stderr
    assert (again / checkpoint.name).read_bytes() == checkpoint.read_bytes()
    searched = []
    for folder in (out, again):
        with Store(folder / "run.sqlite") as store:
            searched.append({e.arch_key for e in store.evaluations("main")})
    assert searched[0] != searched[1], "search.seed searches the same super-network anew"
    other = tmp_path / "other.yaml"
    other.write_text(config.read_text().replace("epochs: 1", "epochs: 2"))
    r = cli("run", "--config", other, "--out", tmp_path / "run", "--resume")
    assert r.returncode == 2 and "other settings" in r.stderr


def test_progressive_shrinking_opens_one_dimension_at_a_time():
    task = random_image_task(n=40)
    overrides = {"widths": (4, 4, 8, 8), "depths": (1, 2), "expands": (1, 2),
                 "kernels": (3, 5), "resolutions": (12, 16), "final_width": 8}  # fmt: skip
    model = build_family("mobilenet", overrides, task.spec)
    chosen = settings(model, task, epochs=4, batch_size=8, progressive=True, random_subnets=6)
    trainer = SandwichTrainer(model, task, chosen)
    history = trainer.fit()
    assert [h["phase"] for h in history] == ["full", "kernel", "depth", "expand"]
    largest = model.teacher_arch()
    rng = __import__("numpy").random.default_rng(0)
    varied = {}
    for phase in model.phases():
        students = trainer._students(rng, phase)
        varied[phase.name] = {
            name.rsplit(".", 1)[-1]
            for arch in students
            for name in arch.names
            if arch[name] is not None and arch[name] != largest[name]
        }
    assert varied["full"] == set()
    assert varied["kernel"] == {"kernel"}
    assert varied["depth"] <= {"kernel", "depth"} and "depth" in varied["depth"]
    assert {"expand", "resolution"} <= varied["expand"]


def test_search_on_a_profile_keeps_to_a_memory_constraint(tmp_path):
    """--latency profile:FILE needs no measuring during the search; violators are stored but
    never enter the front; exported models are timed here next to the profile's estimate."""
    config = tiny_config(tmp_path, budget=12)
    profile = tmp_path / "device.json"
    r = hwnas("profile", "create", "--config", config, "--out", profile, "--samples", 12,
              "--rounds", 1)  # fmt: skip
    assert r.returncode == 0, r.stderr
    r = cli("profile", "create", "--config", config, "--out", profile)
    assert r.returncode == 2 and "already exists" in r.stderr

    model = build_family("mobilenet", yaml_overrides(config), image_spec(1, 10))
    peaks = sorted(peak_activation_bytes(model.space().sample(rng), model.config, 32) / 1024
                   for rng in map(__import__("numpy").random.default_rng, range(40)))  # fmt: skip
    limit = peaks[len(peaks) // 2]  # about half the space is over it
    out = tmp_path / "run"
    r = hwnas("run", "--config", config, "--out", out, "--latency", f"profile:{profile}",
              "--constraint", f"peak_memory_kb <= {limit}")  # fmt: skip
    assert r.returncode == 0, r.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["latency"]["source"] == f"profile:{profile}"
    assert summary["constraints"] == [{"name": "peak_memory_kb", "direction": "min",
                                       "limit": limit}]  # fmt: skip
    assert summary["front"] and all(f["metrics"]["peak_memory_kb"] <= limit
                                    for f in summary["front"])  # fmt: skip
    with Store(out / "run.sqlite") as store:
        stored = store.evaluations("main")
    assert len(stored) == 12 and all("latency_table_ms" in e.metrics for e in stored)
    assert any(e.metrics["peak_memory_kb"] > limit for e in stored)  # kept, but not in front
    for info in summary["exported"].values():
        assert info["measured_latency_ms_here"] > 0
        assert info["profile_error"] == pytest.approx(
            info["profile_latency_ms"] / info["measured_latency_ms_here"] - 1
        )

    other = tmp_path / "other.yaml"
    other.write_text(config.read_text().replace("kernels: [3, 5]", "kernels: [3]"))
    r = cli("run", "--config", other, "--out", tmp_path / "o2", "--latency", f"profile:{profile}")
    assert r.returncode == 2 and "made for another space (kernels" in r.stderr
    assert not (tmp_path / "o2").exists()


def yaml_overrides(config):
    import yaml

    return yaml.safe_load(config.read_text())["supernet"]["overrides"]


def test_the_transformer_on_digits_is_a_vision_transformer_run_end_to_end(tmp_path):
    from hwnas.config import validated
    from hwnas.families import FAMILIES
    from hwnas.run import run_job

    small = {k: list(v) if isinstance(v, tuple) else v
             for k, v in FAMILIES["transformer"].small_overrides.items()}  # fmt: skip
    config = validated({
        "supernet": {"name": "transformer", "overrides": {**small, "patch_size": 8}},
        "train": {"epochs": 1, "batch_size": 128},
        "search": {"budget": 4, "calibration_images": 16},
        "latency": FAST_LATENCY.model_dump(),
    })  # fmt: skip
    summary = run_job(config, tmp_path / "vit")
    assert summary["supernet"]["config"]["input"] == "image"
    assert summary["supernet"]["config"]["image_size"] == 32
    assert [o["name"] for o in summary["objectives"]] == ["accuracy", "latency_ms"]
    assert summary["training_settings"]["optimizer"] == "adamw"  # the family's default
    for info in summary["exported"].values():
        assert info["max_abs_diff"] <= 1e-4 and 0 <= info["test"]["accuracy"] <= 100
    description = json.loads((tmp_path / "vit" / "models" / "knee.json").read_text())
    assert description["input"] == {"name": "input", "shape": ["batch", 1, 32, 32],
                                    "dtype": "float32"}  # fmt: skip
    assert summary["command"] == "python: hwnas.run.run_job"


def test_language_model_run_end_to_end(tmp_path):
    from helpers import python_like

    corpus = tmp_path / "corpus"
    for i in range(200):
        (corpus / f"p{i % 7}").mkdir(parents=True, exist_ok=True)
        (corpus / f"p{i % 7}" / f"m{i}.py").write_bytes(python_like(8, seed=i))
    config = tmp_path / "lm.yaml"
    config.write_text(f"""
data: {{name: python, path: {corpus}, context: 16, windows_per_epoch: 32, eval_windows: 8}}
supernet:
  name: transformer
  overrides: {{widths: [16, 32], depths: [1, 2], heads: [1, 2], head_dim: 8,
              mlp_ratios: [1, 2], experts: 2, linear_chunk: 4, max_context: 64}}
train: {{epochs: 2, batch_size: 8}}
search: {{budget: 6, calibration_images: 8, constraints: ["bits_per_byte <= 8.5"]}}
latency: {FAST_LATENCY_CONFIG}
""")
    out = tmp_path / "run"
    r = hwnas("run", "--config", config, "--out", out)
    assert r.returncode == 0, r.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["objectives"] == [
        {"name": "bits_per_byte", "direction": "min", "limit": 8.5},
        {"name": "latency_ms", "direction": "min", "limit": None},
    ]
    assert summary["task"]["task"] == "language-model" and summary["task"]["context"] == 16
    assert summary["training_settings"]["teacher_only"] > 0
    assert all(0 < f["metrics"]["bits_per_byte"] < 8.5 for f in summary["front"])
    for label in ("knee", "most_accurate", "fastest"):
        info = summary["exported"][label]
        assert info["max_abs_diff"] <= 1e-4 and info["test"]["bits_per_byte"] > 0
        description = json.loads((out / "models" / f"{label}.json").read_text())
        assert description["input"]["shape"] == ["batch", 16]
        assert description["preprocessing"]["vocab_size"] == 256
    assert summary["splits"]["val"]["evaluated"] == "8 windows of 16 bytes"
    with Store(out / "run.sqlite") as store:
        assert len(store.evaluations("main")) == 6


def test_one_process_at_a_time_writes_a_run_and_a_killed_holder_frees_it(tmp_path):
    """While another process holds ``--out``, a run (new or resumed) is one line, exit 2,
    and the folder is untouched; the holder killed with SIGKILL leaves no stuck lock."""
    from hwnas.files import run_lock

    out = tmp_path / "out"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path\n"
         "from hwnas.files import run_lock\nwith run_lock(Path(sys.argv[1])):\n"
         "    print('held', flush=True); time.sleep(120)", str(out)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        (out / "note.txt").write_text("the holder's")
        config = tiny_config(tmp_path)
        for extra in ((), ("--resume",)):
            r = cli("run", "--config", config, "--out", out, *extra)
            assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
            assert "another hwnas process is writing this run" in r.stderr
            assert sorted(p.name for p in out.iterdir()) == ["note.txt"]
    finally:
        holder.kill()
        holder.wait()
    with run_lock(out):  # free again: the kernel dropped the dead holder's lock
        assert (out / "note.txt").exists()


def test_a_refused_run_removes_the_folder_it_made_and_nothing_else(tmp_path):
    from hwnas.files import run_lock

    fresh, kept = tmp_path / "fresh", tmp_path / "kept"
    kept.mkdir()
    for out in (fresh, kept):
        with pytest.raises(HwnasError, match="bad input"), run_lock(out):
            raise HwnasError("bad input")
    assert not fresh.exists() and kept.is_dir()


def test_an_unreachable_scheduler_is_one_line_before_any_training(tmp_path, monkeypatch):
    monkeypatch.setattr("hwnas.execute.dask.CONNECT_TIMEOUT_S", 1)
    out = tmp_path / "out"
    r = cli("run", "--config", tiny_config(tmp_path), "--out", out,
            "--scheduler", "tcp://127.0.0.1:1")  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and "scheduler tcp://127.0.0.1:1: cannot connect" in r.stderr
    assert not out.exists()


def test_a_run_on_worker_processes_evaluates_each_arch_once_on_both(tmp_path):
    """``--workers 2``: the super-network trained here, then searched by two worker processes
    that each rebuild it from the run's config and checkpoint; a sub-network's accuracy is
    the same wherever it is measured (here: rebuilt in this process)."""
    out = tmp_path / "out"
    r = hwnas("run", "--config", tiny_config(tmp_path, budget=4), "--out", out,
              "--workers", 2)  # fmt: skip
    assert r.returncode == 0, r.stderr
    with Store(out / "run.sqlite") as store:
        done = store.evaluations("main")
        jobs = store.jobs("main")
    assert len({e.arch_key for e in done}) == len(done) == 4
    assert len({j["worker"] for j in jobs}) == 2 and all(j["state"] == "done" for j in jobs)
    by_worker = json.loads((out / "summary.json").read_text())["jobs_done_by_worker"]
    assert len(by_worker) == 2 and sum(n for w in by_worker.values() for n in w.values()) == 4
    from hwnas.config import load_config
    from hwnas.run import CHECKPOINT, worker_evaluators

    here = worker_evaluators({"config": load_config(tiny_config(tmp_path, budget=4)).model_dump(
        mode="json"), "checkpoint": str(out / CHECKPOINT)})  # fmt: skip
    for e in done:  # the same sub-network, measured in this process
        quality = here.evaluators["quality"].evaluate(here.space.make(e.arch))
        assert quality["accuracy"] == e.metrics["accuracy"]
