"""Every bad input, one line: generated damage of each kind a user can hand hwnas.

Each case runs the command line in-process (``helpers.cli``) on a damaged config value,
config file, data file, checkpoint, profile, run store or benchmark table, and holds it to
the promise: exit code 2, exactly one stderr line ``hwnas: error: ...`` naming the file or
the key, no traceback, and nothing new in ``--out``. Every case fails in validation, before
any training or timing, so the whole file runs in seconds.
"""

from __future__ import annotations

import copy
import gzip
import json
import os
import pickle
import sqlite3
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save as save_tensors

from helpers import cli, toy_rows, write_csv
from hwnas.config import load_config
from hwnas.errors import HwnasError
from hwnas.hardware.predictor import LatencyPredictor
from hwnas.hardware.profile import Profile, ProfileReference, check_fits, load_profile
from hwnas.hardware.settings import LatencySettings
from hwnas.hardware.table import LatencyTable
from hwnas.search import OPTIONS, SEARCHERS
from hwnas.store import Store
from test_data import _batch, _python2_dump
from test_run import TINY

# -- the promise ---------------------------------------------------------------------------


def listing(folder: Path) -> dict[str, int] | None:
    """What a folder holds (relative path -> size), or None when it does not exist."""
    if not folder.exists():
        return None
    return {str(p.relative_to(folder)): p.lstat().st_size for p in sorted(folder.rglob("*"))}


def assert_refused(result, out: Path, before: dict | None, *names: str) -> str:
    """Exit 2, one ``hwnas: error:`` line naming one of ``names``, no traceback, ``out``
    unchanged; returns the line."""
    everything = result.stdout + result.stderr
    assert "Traceback" not in everything, everything
    lines = result.stderr.splitlines()
    assert result.returncode == 2, (result.returncode, everything)
    assert len(lines) == 1 and lines[0].startswith("hwnas: error: "), result.stderr
    assert any(str(n) in lines[0] for n in names), (names, lines[0])
    assert listing(out) == before, f"--out changed: {listing(out)} (was {before})"
    return lines[0]


def tiny_raw() -> dict:
    return yaml.safe_load(TINY.replace("BUDGET", "6"))


def write_config(path: Path, raw: dict) -> Path:
    path.write_text(yaml.safe_dump(raw))
    return path


def changed(raw: dict, dotted: str, value) -> dict:
    raw = copy.deepcopy(raw)
    *sections, key = dotted.split(".")
    target = raw
    for section in sections:
        target = target.setdefault(section, {})
    target[key] = value
    return raw


# -- config values -------------------------------------------------------------------------

INF, NAN = float("inf"), float("nan")
TRANSFORMER = {"supernet.name": "transformer", "data.name": "python"}
VALUES = [
    *[("seed", v) for v in (-1, 2**32, 2**64, -(2**70), True, "5", 1.5, None, [0])],
    *[("train.threads", v) for v in (0, 2**64, 1025, True, "2", 1.0)],
    *[("train.epochs", v) for v in (-1, 10**9, "many", 2.5)],
    *[("train.batch_size", v) for v in (0, 2**40, False)],
    *[("train.learning_rate", v) for v in (INF, NAN, -INF, -1.0, 0, 11, "fast", True)],
    *[("train.grad_clip", v) for v in (INF, 0, 1e300)],
    *[("train.weight_decay", v) for v in (NAN, -0.1)],
    *[("train.warmup", v) for v in (1.0, -0.5)],
    *[("train.temperature", v) for v in (NAN, 0, 1e9)],
    ("train.random_subnets", 10**6),
    ("train.optimizer", "adam"),
    ("train.progressive", "yes"),
    *[("latency.threads", v) for v in (0, 2**64, True)],
    *[("latency.batch_size", v) for v in (0, 10**9)],
    *[("latency.max_seconds", v) for v in (INF, 0, 10**9)],
    *[("latency.target_ci", v) for v in (NAN, 0, 5)],
    *[("latency.warmup", v) for v in (-1, 10**12)],
    ("latency.max_runs", 10**12),
    ("latency.backend", "tensorrt"),
    ("latency.source", "profile:"),
    *[("latency.rounds", v) for v in (0, 10**6, "3")],
    ("latency.recalibrate", True),  # with measured latency: nothing to recalibrate
    *[("search.budget", v) for v in (0, 10**12, 1.5)],
    ("search.calibration_images", 10**9),
    ("search.retries", -1),
    ("search.searcher", "bogus"),
    ("search.options", [1, 2]),
    ("search.options", {"magic": 1}),
    ("search.objectives", "accuracy:max"),
    ("search.constraints", ["latency_ms <= inf"]),
    *[("data.image_size", v) for v in (4, 10**6, 32.0)],
    *[("data.val_fraction", v) for v in (0, 1, NAN, "0.2")],
    *[("data.context", v) for v in (1, 10**9)],
    ("data.windows_per_epoch", 0),
    ("data.eval_windows", 10**9),
    ("data.tokenizer", "a\0b"),
    *([] if torch.cuda.is_available() else [("train.device", "cuda")]),
    ("train.device", "cuda:9999"),
    ("train.device", "gpu"),
    ("data.name", "mnist"),
    ("data.path", "a\0b"),
    ("data.path", "x" * 5000),
    *[("proxies.names", v) for v in (["bogus"], ["nwot", "nwot"], "nwot", [1])],
    *[("proxies.batch_size", v) for v in (1, 10**6)],
    ("proxies.weights", "random"),
    ("supernet.name", "resnet"),
    ("supernet.overrides", [1]),
    ("unknown_section", {}),
]
# a searcher option of the wrong name, type or bounds, for every searcher that takes any
SEARCHER_OPTIONS = [
    ("nsga2", {"population_size": "abc"}),
    ("nsga2", {"population_size": 1}),
    ("nsga2", {"population_size": 2**40}),
    ("nsga2", {"crossover_eta": INF}),
    ("nsga2", {"mutation_eta": 0}),
    ("nsga2", {"population": 20}),
    ("linas", {"population_size": "abc"}),
    ("linas", {"initial": -1}),
    ("linas", {"initial": 1.5}),
    ("linas", {"samples": True}),
    ("linas", {"reference_quantile": 2}),
    ("linas", {"reference_quantile": NAN}),
    ("linas", {"exhaustive_limit": 10**12}),
    ("linas", {"seed": 3}),
    ("evolution", {"sample_size": 100}),
    ("evolution", {"population_size": "50"}),
    ("random", {"anything": 1}),
    ("optuna-tpe", {"max_retries": 0}),
    ("optuna-nsga2", {"population_size": None}),
    ("optuna-tpe", {"population_size": 20}),
    ("optuna-gp", {"deterministic": 1}),
    ("optuna-gp", {"startup": 0}),
]
OVERRIDES = [
    ({}, {"resolutions": [100_000]}),
    ({}, {"resolutions": [16, 2**40]}),
    ({}, {"widths": [10**6, 16, 16, 16]}),
    ({}, {"widths": [4096, 4096, 4096, 4096]}),
    ({}, {"widths": "abc"}),
    ({}, {"widths": [8.5, 12, 16, 16]}),
    ({}, {"depths": [1, 1000]}),
    ({}, {"kernels": [4]}),
    ({}, {"expands": [100]}),
    ({}, {"stem_stride": 100}),
    ({}, {"final_width": 10**7}),
    ({}, {"widht": [8]}),
    ({}, {"in_channels": 3}),
    ({}, {"strides": [1, 2]}),
    ({}, {"resolutions": list(range(8, 1000))}),
    (TRANSFORMER, {"depths": [4096]}),
    (TRANSFORMER, {"widths": [100_000]}),
    (TRANSFORMER, {"max_context": 10**9}),
    (TRANSFORMER, {"max_context": 64}),
    (TRANSFORMER, {"head_dim": 10**5}),
    (TRANSFORMER, {"head_dim": True}),
    (TRANSFORMER, {"heads": [10**4]}),
    (TRANSFORMER, {"experts": 10**6}),
    (TRANSFORMER, {"context": 32}),
    (TRANSFORMER, {"attentions": ["cosine"]}),
    (TRANSFORMER, {"widths": ["64"]}),
    (TRANSFORMER, {"capacity_factor": INF}),
    ({"supernet.name": "transformer"}, {"patch_size": 5}),
    ({"supernet.name": "transformer"}, {"patch_size": 10**4}),
]


def _id(value) -> str:
    return json.dumps(value, default=str)[:40]


@pytest.mark.parametrize(("key", "value"), VALUES, ids=[f"{k}={_id(v)}" for k, v in VALUES])
def test_bad_config_values(tmp_path, key, value):
    path = write_config(tmp_path / "bad.yaml", changed(tiny_raw(), key, value))
    out = tmp_path / "out"
    line = assert_refused(cli("run", "--config", path, "--out", out), out, None, path)
    where = key.split(".")[0]
    assert f"{path}: {where}" in line, line


@pytest.mark.parametrize(
    ("name", "options"), SEARCHER_OPTIONS, ids=[f"{n}-{_id(o)}" for n, o in SEARCHER_OPTIONS]
)
def test_bad_searcher_options_before_any_work(tmp_path, name, options):
    raw = changed(changed(tiny_raw(), "search.searcher", name), "search.options", options)
    path = write_config(tmp_path / "bad.yaml", raw)
    out = tmp_path / "out"
    line = assert_refused(cli("run", "--config", path, "--out", out), out, None, path)
    assert "search.options" in line and repr(name) in line


def test_searcher_option_schemas_match_the_constructors():
    """``OPTIONS`` lists exactly the keyword arguments each searcher's constructor takes
    (for an Optuna sampler, those of the adapter that sampler reads)."""
    import inspect

    from hwnas.search.optuna_adapter import OptunaSearch

    fixed = {"self", "space", "objectives", "seed", "constraints", "sampler"}
    adapter = set(inspect.signature(OptunaSearch.__init__).parameters) - fixed
    used = set()
    for name, factory in SEARCHERS.items():
        if name.startswith("optuna"):
            assert set(OPTIONS[name]) <= adapter, name
            used |= set(OPTIONS[name])
        else:
            assert set(OPTIONS[name]) == set(inspect.signature(factory.__init__).parameters) - fixed
    assert used == adapter  # every adapter option reaches some sampler


@pytest.mark.parametrize(
    ("setting", "overrides"), OVERRIDES, ids=[f"{_id(s)}-{_id(o)}" for s, o in OVERRIDES]
)
def test_bad_supernet_overrides_before_any_data_loads(tmp_path, setting, overrides):
    raw = tiny_raw()
    raw["supernet"]["overrides"] = {}
    for key, value in setting.items():
        raw = changed(raw, key, value)
    raw = changed(raw, "supernet.overrides", overrides)
    path = write_config(tmp_path / "bad.yaml", raw)
    out = tmp_path / "out"
    line = assert_refused(cli("run", "--config", path, "--out", out), out, None, path)
    assert "supernet.overrides" in line
    assert len(line) < 400  # one readable line, not a dump of the value


# -- config files --------------------------------------------------------------------------


def _bomb(levels: int = 7) -> str:
    lines = ["a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]")
    return "\n".join(lines) + "\n"


CONFIG_FILES: dict[str, Callable[[Path], Path]] = {
    "zero-bytes": lambda p: _write(p, b""),
    "only-comments": lambda p: _write(p, b"# nothing here\n\n"),
    "not-utf8": lambda p: _write(p, "seed: 0  # caf\xe9\n".encode("latin1")),
    "utf16": lambda p: _write(p, "seed: 0\n".encode("utf-16")),
    "binary": lambda p: _write(p, bytes(range(256)) * 8),
    "nul-bytes": lambda p: _write(p, b"seed: 0\n\0\0\0"),
    "yaml-bomb": lambda p: _write(p, _bomb().encode()),
    "huge": lambda p: _write(p, b"# padding\n" * 120_000),
    "deep-nesting": lambda p: _write(p, b"seed: " + b"[" * 20_000 + b"]" * 20_000),
    "deep-mapping": lambda p: _write(p, b"".join(b"  " * i + b"k:\n" for i in range(3000))),
    "int-of-5000-digits": lambda p: _write(p, b"seed: " + b"9" * 5000),
    "top-level-list": lambda p: _write(p, b"- seed: 0\n"),
    "top-level-scalar": lambda p: _write(p, b"42\n"),
    "bad-yaml": lambda p: _write(p, b"train: [1, 2\n"),
    "tab-indent": lambda p: _write(p, b"train:\n\tepochs: 1\n"),
    "python-tag": lambda p: _write(p, b"seed: !!python/object/apply:os.system ['true']\n"),
    "two-documents": lambda p: _write(p, b"seed: 0\n---\nseed: 1\n"),
    "directory": lambda p: _mkdir(p),
    "missing": lambda p: p,
    "symlink-loop": lambda p: _loop(p),
    "broken-symlink": lambda p: _symlink(p, p.parent / "nowhere.yaml"),
}


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path


def _symlink(path: Path, target: Path) -> Path:
    path.symlink_to(target)
    return path


def _loop(path: Path) -> Path:
    other = path.with_name(path.name + ".other")
    other.symlink_to(path)
    return _symlink(path, other)


@pytest.mark.parametrize("kind", list(CONFIG_FILES))
def test_bad_config_files(tmp_path, kind):
    path = CONFIG_FILES[kind](tmp_path / "bad.yaml")
    out = tmp_path / "out"
    assert_refused(cli("run", "--config", path, "--out", out), out, None, f"config {path}")
    assert_refused(cli("train", "--config", path, "--out", out), out, None, f"config {path}")


def test_aliases_within_bounds_still_load(tmp_path):
    """The alias guard counts expanded values, it does not forbid aliases."""
    text = "supernet:\n  overrides: &o {final_width: 32}\n"
    path = tmp_path / "ok.yaml"
    path.write_text(text)
    assert load_config(path).supernet.overrides == {"final_width": 32}


# -- data files ----------------------------------------------------------------------------


def _cifar(root: Path, damage: Callable[[Path], object] | None = None) -> Path:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    _python2_dump(_batch(20, 0), folder / "data_batch_1")
    _python2_dump(_batch(10, 100), folder / "test_batch")
    if damage is not None:
        damage(folder)
    return folder


def _replace(name: str, data: bytes | None) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        target = folder / name
        target.unlink(missing_ok=True)
        if data is None:
            target.mkdir()
        else:
            target.write_bytes(data)

    return damage


def _batch_bytes(changes: dict) -> bytes:
    batch = {**_batch(20, 0), **changes}
    return pickle.dumps(batch, protocol=2)


class _Evil:
    def __reduce__(self):
        return (os.system, ("true",))


def _truncated(folder: Path) -> None:
    path = folder / "data_batch_1"
    path.write_bytes(path.read_bytes()[:5000])


def _looped(folder: Path) -> None:
    (folder / "data_batch_1").unlink()
    _loop(folder / "data_batch_1")


CIFAR = {
    "zero-byte-batch": _replace("data_batch_1", b""),
    "garbage-batch": _replace("data_batch_1", b"\x80\x02garbage" * 50),
    "truncated-batch": _truncated,
    "batch-is-a-folder": _replace("data_batch_1", None),
    "batch-symlink-loop": _looped,
    "forbidden-global": _replace("data_batch_1", pickle.dumps({b"x": _Evil()}, protocol=2)),
    "not-a-dict": _replace("data_batch_1", pickle.dumps([1, 2, 3], protocol=2)),
    "no-labels": _replace("data_batch_1", pickle.dumps({b"data": b"\0" * 3072}, protocol=2)),
    "short-data": _replace("data_batch_1", _batch_bytes({b"data": b"\0" * 3000})),
    "wrong-dtype": _replace(
        "data_batch_1", _batch_bytes({b"data": np.zeros((20, 3072), np.float32)})
    ),
    "labels-out-of-range": _replace("data_batch_1", _batch_bytes({b"labels": [99] * 20})),
    "labels-not-ints": _replace("data_batch_1", _batch_bytes({b"labels": ["a"] * 20})),
    "too-few-labels": _replace("data_batch_1", _batch_bytes({b"labels": [1]})),
    "no-test-batch": lambda f: (f / "test_batch").unlink(),
    "empty-test-batch": _replace(
        "test_batch",
        pickle.dumps({b"data": np.zeros((0, 3072), np.uint8), b"labels": []}, protocol=2),
    ),
    "no-training-batch": lambda f: (f / "data_batch_1").unlink(),
}


def _run_on_data(tmp_path: Path, data: dict, *names) -> None:
    raw = changed(tiny_raw(), "data", data)
    path = write_config(tmp_path / "c.yaml", raw)
    out = tmp_path / "out"
    assert_refused(cli("run", "--config", path, "--out", out), out, None, *names)


@pytest.mark.parametrize("kind", list(CIFAR))
def test_damaged_cifar_batches(tmp_path, kind):
    folder = _cifar(tmp_path / "data", CIFAR[kind])
    _run_on_data(tmp_path, {"name": "cifar10", "path": str(folder)}, folder)


@pytest.mark.parametrize("kind", ["missing", "a-file", "empty-folder"])
def test_cifar_path_that_is_no_cifar_folder(tmp_path, kind):
    path = tmp_path / "data"
    if kind == "a-file":
        path.write_bytes(b"x")
    elif kind == "empty-folder":
        path.mkdir()
    _run_on_data(tmp_path, {"name": "cifar10", "path": str(path)}, path)


def _png(path: Path, size: int = 12) -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def _folder(root: Path, classes: int = 2, images: int = 3) -> Path:
    for k in range(classes):
        (root / f"c{k}").mkdir(parents=True)
        for i in range(images):
            _png(root / f"c{k}" / f"{i}.png")
    root.mkdir(exist_ok=True)
    return root


IMAGE_FOLDERS: dict[str, Callable[[Path], Path]] = {
    "zero-classes": lambda r: _folder(r, classes=0),
    "one-class": lambda r: _folder(r, classes=1),
    "only-text-files": lambda r: (_folder(r, images=0), (r / "c0" / "a.txt").write_text("x"))[0],
    "garbage-png": lambda r: (_folder(r), (r / "c1" / "0.png").write_bytes(b"not a png"))[0],
    "zero-byte-png": lambda r: (_folder(r), (r / "c1" / "0.png").write_bytes(b""))[0],
    "truncated-png": lambda r: (
        _folder(r),
        (r / "c0" / "1.png").write_bytes((r / "c0" / "1.png").read_bytes()[:40]),
    )[0],
    "a-file": lambda r: _write(r, b"x"),
    "missing": lambda r: r,
}


@pytest.mark.parametrize("kind", list(IMAGE_FOLDERS))
def test_bad_image_folders(tmp_path, kind):
    root = IMAGE_FOLDERS[kind](tmp_path / "images")
    _run_on_data(tmp_path, {"name": "image-folder", "path": str(root)}, root)


def _corpus(root: Path, files: dict[str, bytes]) -> Path:
    root.mkdir()
    for name, content in files.items():
        (root / name).write_bytes(content)
    return root


CORPORA: dict[str, Callable[[Path], Path]] = {
    "no-py-files": lambda r: _corpus(r, {"a.txt": b"x = 1\n" * 100}),
    "empty-folder": lambda r: _corpus(r, {}),
    "too-small": lambda r: _corpus(r, {"a.py": b"x = 1\n"}),
    "only-symlinks": lambda r: (_corpus(r, {}), (r / "a.py").symlink_to("/etc/hostname"))[0],
    "a-file": lambda r: _write(r, b"x = 1\n"),
    "missing": lambda r: r,
}


@pytest.mark.parametrize("kind", list(CORPORA))
def test_bad_python_corpora(tmp_path, kind):
    root = CORPORA[kind](tmp_path / "corpus")
    data = {"name": "python", "path": str(root), "context": 16}
    raw = changed(changed(tiny_raw(), "data", data), "supernet", {"name": "transformer"})
    path = write_config(tmp_path / "c.yaml", raw)
    out = tmp_path / "out"
    assert_refused(cli("run", "--config", path, "--out", out), out, None, root)


def _tokenizer_folder(root: Path, files: dict[str, str | bytes]) -> Path:
    root.mkdir()
    for name, content in files.items():
        data = content.encode() if isinstance(content, str) else content
        (root / name).write_bytes(data)
    return root


def _valid_tokenizer(root: Path) -> str:
    from helpers import tiny_tokenizer

    return tiny_tokenizer(root.with_suffix(".json"), ["x = 1\n" * 50], vocab=270).read_text()


TOKENIZERS: dict[str, Callable[[Path], Path]] = {
    "missing": lambda r: r,
    "zero-byte": lambda r: _write(r, b""),
    "not-json": lambda r: _write(r, b"{not json"),
    "not-utf8": lambda r: _write(r, b"\xff\xfe{}"),
    "json-but-no-tokenizer": lambda r: _write(r, b'{"version": "1.0", "model": 3}'),
    "folder-without-tokenizer": lambda r: _tokenizer_folder(r, {}),
    "only-a-sentencepiece-model": lambda r: _tokenizer_folder(r, {"tokenizer.model": b"\0"}),
    "config-vocab-below-the-tokenizer": lambda r: _tokenizer_folder(
        r, {"tokenizer.json": _valid_tokenizer(r), "config.json": '{"vocab_size": 10}'}
    ),
}


@pytest.mark.parametrize("kind", list(TOKENIZERS))
def test_a_tokenizer_that_does_not_load(tmp_path, kind):
    """``data.tokenizer`` is read when the config is checked: before the corpus or any
    training, one line naming it."""
    pytest.importorskip("tokenizers")
    path = TOKENIZERS[kind](tmp_path / "tokenizer")
    root = _corpus(tmp_path / "corpus", {f"m{i}.py": b"x = 1\n" * 200 for i in range(30)})
    data = {"name": "python", "path": str(root), "context": 16, "tokenizer": str(path)}
    raw = changed(changed(tiny_raw(), "data", data), "supernet", {"name": "transformer"})
    config = write_config(tmp_path / "c.yaml", raw)
    out = tmp_path / "out"
    assert_refused(cli("run", "--config", config, "--out", out), out, None, path)


# -- checkpoints ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> tuple[Path, Path]:
    """A valid checkpoint of the tiny config's untrained super-network (epoch 0, so a
    resume would train: every damaged copy must be refused before that)."""
    from hwnas.run import _trainer, prepare

    root = tmp_path_factory.mktemp("checkpoint")
    config_path = write_config(root / "tiny.yaml", tiny_raw())
    config = load_config(config_path)
    task, model = prepare(config)
    trainer = _trainer(config, task, model)
    trainer.save(root / "supernet.safetensors")
    trainer.epoch = config.train.epochs  # as if trained: a resume goes straight to the search
    (root / "complete").mkdir()
    trainer.save(root / "complete" / "supernet.safetensors")
    return config_path, root / "supernet.safetensors"


def _header(path: Path) -> tuple[dict, dict]:
    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata()), {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118


def _rewrite(change: Callable[[dict], None]) -> Callable[[Path], None]:
    """Edit the header (``meta`` etc. as parsed JSON), keeping the tensors and digests."""

    def damage(path: Path) -> None:
        header, tensors = _header(path)
        parsed = {k: json.loads(v) for k, v in header.items() if k in ("space", "config", "meta")}
        change(parsed)
        header.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in parsed.items()})
        path.write_bytes(save_tensors(tensors, metadata={k: str(v) for k, v in header.items()}))

    return damage


def _raw_header(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        header, tensors = _header(path)
        change(header)
        path.write_bytes(save_tensors(tensors, metadata=header))

    return damage


def _bytes(change: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(change(path.read_bytes()))


def _other_family(path: Path) -> None:
    from helpers import image_spec
    from hwnas.families import build_family, save_checkpoint

    model = build_family("transformer", {"widths": (16,), "depths": (1,)}, image_spec(1))
    save_checkpoint(path, model, {"epoch": 0})


def _replace_with_folder(path: Path) -> None:
    path.unlink()
    path.mkdir()


def _replace_with_loop(path: Path) -> None:
    path.unlink()
    _loop(path)


CHECKPOINTS: dict[str, Callable[[Path], None]] = {
    "zero-bytes": _bytes(lambda b: b""),
    "truncated": _bytes(lambda b: b[: len(b) // 2]),
    "garbage": _bytes(lambda b: os.urandom(4096)),
    "flipped-tensor-byte": _bytes(lambda b: b[:-100] + bytes([b[-100] ^ 0xFF]) + b[-99:]),
    "huge-header-length": _bytes(lambda b: (2**62).to_bytes(8, "little") + b[8:]),
    "a-folder": _replace_with_folder,
    "symlink-loop": _replace_with_loop,
    "meta-lacks-epoch": _rewrite(lambda h: h["meta"].pop("epoch")),
    "meta-lacks-history": _rewrite(lambda h: h["meta"].pop("history")),
    "meta-lacks-train": _rewrite(lambda h: h["meta"].pop("train")),
    "meta-epoch-not-int": _rewrite(lambda h: h["meta"].update(epoch="abc")),
    "meta-epoch-bool": _rewrite(lambda h: h["meta"].update(epoch=True)),
    "meta-history-not-list": _rewrite(lambda h: h["meta"].update(history=5)),
    "meta-history-bad-record": _rewrite(lambda h: h["meta"].update(history=[{"loss": "x"}])),
    "meta-is-a-list": _rewrite(lambda h: h.update(meta=[1, 2])),
    "meta-not-json": _raw_header(lambda h: h.update(meta="{not json")),
    "meta-deeply-nested": _raw_header(lambda h: h.update(meta="[" * 100_000)),
    "no-config-field": _raw_header(lambda h: h.pop("config")),
    "no-format": _raw_header(lambda h: h.pop("format")),
    "other-format": _raw_header(lambda h: h.update(format="hwnas.supernet/99")),
    "no-digest": _raw_header(lambda h: h.pop("sha256")),
    "other-config": _rewrite(lambda h: h["config"].update(final_width=64)),
    "other-space": _rewrite(lambda h: h["space"].update(name="elsewhere")),
    "other-family": _other_family,
    "optimizer-missing": lambda p: Path(str(p) + ".optim").unlink(),
    "optimizer-garbage": lambda p: Path(str(p) + ".optim").write_bytes(b"garbage"),
}


@pytest.mark.parametrize("kind", list(CHECKPOINTS))
def test_damaged_checkpoints_on_resume(tmp_path, checkpoint, kind):
    config_path, good = checkpoint
    out = tmp_path / "out"
    out.mkdir()
    target = out / "supernet.safetensors"
    target.write_bytes(good.read_bytes())
    Path(str(target) + ".optim").write_bytes(Path(str(good) + ".optim").read_bytes())
    CHECKPOINTS[kind](target)
    before = listing(out)
    result = cli("train", "--config", config_path, "--out", out, "--resume")
    assert_refused(result, out, before, target, out)  # a looping link: "no run to resume"


# -- device profiles -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def profile(tmp_path_factory) -> tuple[Path, dict]:
    """A valid profile for the tiny config's super-network, made up (every layer 0.01 ms, a
    neutral predictor) instead of timed: these tests check reading, not numbers."""
    from hwnas.run import prepare

    root = tmp_path_factory.mktemp("profile")
    config_path = write_config(root / "tiny.yaml", tiny_raw())
    _, model = prepare(load_config(config_path))
    features = model.space().features([model.teacher_arch()]).shape[1]
    figures = {"within_10pct": 0.9, "mape_pct": 5.0, "kendall_tau": 0.9, "n": 12}
    made = Profile(
        supernet="mobilenet",
        config=model.config.to_dict(),
        input_shape=tuple(model.input_spec().shape),
        settings=LatencySettings(),
        device={"cpu": "test", "cpu_count": 2, "os": "test", "threads": 1},
        table=LatencyTable(0.005, {layer.key: 0.01 for layer in model.layer_catalogue()}),
        table_noise={"rounds": 1},
        predictor=LatencyPredictor((0.0,) * features, (1.0,) * features, (0.0,) * features, 0, 1),
        validation={
            "method": "made up",
            "seed": 0,
            "samples": 12,
            "table": figures,
            "predictor": figures,
        },  # fmt: skip
        reference=ProfileReference(model.teacher_arch().key, 1.0, 12, 0.05),
        created="2026-01-01T00:00:00+00:00",
    )
    path = root / "tiny.json"
    made.save(path)
    check_fits(load_profile(path), path, "mobilenet", model)  # the base itself is valid
    return config_path, json.loads(path.read_text())


def _leaves(value, prefix=()):
    """Every path into a profile's JSON, but only the first of a dict's many entries (one
    table entry stands for all) and nothing inside ``device`` (a free-form description)."""
    yield prefix, value
    if prefix == ("device",):
        return
    if isinstance(value, dict):
        for key in list(value)[:1] if prefix == ("table", "entries") else value:
            yield from _leaves(value[key], (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value[:1]):
            yield from _leaves(item, (*prefix, i))


def _wrong_types(value) -> list:
    """A value of another JSON type, and for numbers one that is not a number at all."""
    if isinstance(value, bool):
        return ["x"]
    if isinstance(value, int):
        return ["1", True]
    if isinstance(value, float):
        return ["1.5", "NaN"]
    if isinstance(value, str):
        return [1]
    if isinstance(value, list):
        return [{}]
    return [[]]


def _profile_cases():
    """(label, change of the parsed JSON) for each wrong JSON type at each level."""
    raw = json.loads(json.dumps(_PROFILE_SHAPE))
    cases = []
    for path, value in _leaves(raw):
        if not path or path[:2] == ("supernet", "config") and len(path) > 2:
            continue
        for bad in _wrong_types(value):
            cases.append((f"{'.'.join(map(str, path))}={_id(bad)}", path, bad))
    return cases


# The profile's JSON shape (types only matter), to generate cases at import time.
_FIG = {"within_10pct": 0.9, "mape_pct": 5.0, "kendall_tau": 0.9, "n": 12}
_PROFILE_SHAPE = {
    "format": "hwnas-latency-profile", "version": 2, "created": "x", "hwnas_version": "x",
    "supernet": {"name": "mobilenet", "config": {"widths": [8]}, "input_shape": [1, 32, 32],
                 "fingerprint": "x"},
    "settings": {"backend": "onnxruntime", "threads": 1, "batch_size": 1, "warmup": 10,
                 "min_runs": 10, "max_runs": 2000, "target_ci": 0.01, "max_seconds": 2.0},
    "device": {"cpu": "x"},
    "table": {"overhead_ms": 0.005, "entries": {"stem": 0.01}, "noise": {"rounds": 1}},
    "predictor": {"kind": "ridge-log-ratio", "mean": [0.0], "scale": [1.0], "coef": [0.0],
                  "intercept": 0.0, "alpha": 1.0},
    "validation": {"method": "x", "seed": 0, "samples": 12, "table": _FIG, "predictor": _FIG},
    "reference": {"arch": "x", "ms": 1.0, "timings": 12, "spread": 0.05},
}  # fmt: skip
PROFILE_TYPES = _profile_cases()


def _set(raw: dict, path: tuple, value) -> dict:
    raw = copy.deepcopy(raw)
    target = raw
    for key in path[:-1]:
        target = target[key]
    last = path[-1]
    if isinstance(target, dict) and last not in target:  # a stand-in key: use the real first
        last = next(iter(target))
    target[last] = value
    return raw


def _run_on_profile(tmp_path: Path, config_path: Path, path: Path, *names) -> None:
    out = tmp_path / "out"
    result = cli("run", "--config", config_path, "--latency", f"profile:{path}", "--out", out)
    assert_refused(result, out, None, *names)


@pytest.mark.parametrize(
    ("label", "where", "bad"), PROFILE_TYPES, ids=[c[0] for c in PROFILE_TYPES]
)
def test_profile_with_a_wrong_json_type(tmp_path, profile, label, where, bad):
    config_path, raw = profile
    path = tmp_path / "bad.json"
    text = json.dumps(_set(raw, where, bad))
    path.write_text(text.replace('"NaN"', "NaN").replace('"Infinity"', "Infinity"))
    _run_on_profile(tmp_path, config_path, path, f"profile {path}")


def _profile_change(change: Callable[[dict], None]) -> Callable[[dict], dict]:
    def apply(raw: dict) -> dict:
        raw = copy.deepcopy(raw)
        change(raw)
        return raw

    return apply


PROFILE_VALUES = {
    "negative-time": _profile_change(
        lambda r: r["table"]["entries"].update({next(iter(r["table"]["entries"])): -1.0})
    ),  # fmt: skip
    "zero-scale": _profile_change(
        lambda r: r["predictor"].update(scale=[0.0] * len(r["predictor"]["scale"]))
    ),  # fmt: skip
    "validation-seed-huge": _profile_change(lambda r: r["validation"].update(seed=2**70)),
    "validation-samples-huge": _profile_change(lambda r: r["validation"].update(samples=10**12)),
    "validation-tau-out-of-range": _profile_change(
        lambda r: r["validation"]["predictor"].update(kendall_tau=7)
    ),
    "validation-missing": _profile_change(lambda r: r.pop("validation")),
    "reference-missing": _profile_change(lambda r: r.pop("reference")),
    "reference-another-arch": _profile_change(lambda r: r["reference"].update(arch="d1-k3")),
    "reference-zero-ms": _profile_change(lambda r: r["reference"].update(ms=0.0)),
    "validation-extra-field": _profile_change(lambda r: r["validation"].update(extra=1)),
    "settings-threads-huge": _profile_change(lambda r: r["settings"].update(threads=2**64)),
    "missing-table-entry": _profile_change(
        lambda r: r["table"]["entries"].pop(next(iter(r["table"]["entries"])))
    ),
    "other-family": _profile_change(lambda r: r["supernet"].update(name="transformer")),
    "other-input": _profile_change(lambda r: r["supernet"].update(input_shape=[3, 32, 32])),
    "other-version": _profile_change(lambda r: r.update(version=1)),
    "fingerprint-mismatch": _profile_change(lambda r: r["supernet"].update(fingerprint="0")),
    "empty-object": _profile_change(lambda r: r.clear()),
    "top-level-list": lambda r: [r],
}


@pytest.mark.parametrize("kind", list(PROFILE_VALUES))
def test_profile_with_a_wrong_value(tmp_path, profile, kind):
    config_path, raw = profile
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(PROFILE_VALUES[kind](raw)))
    _run_on_profile(tmp_path, config_path, path, f"profile {path}")


def _other_space_profile(tmp_path: Path, raw: dict) -> str:
    from hwnas.hardware.profile import space_fingerprint

    raw = copy.deepcopy(raw)
    s = raw["supernet"]
    s["config"]["final_width"] = 64
    s["fingerprint"] = space_fingerprint(s["name"], s["config"], s["input_shape"])
    return json.dumps(raw)


PROFILE_FILES: dict[str, Callable[[Path, dict], bytes | str | None]] = {
    "zero-bytes": lambda p, r: b"",
    "whitespace": lambda p, r: b"  \n",
    "truncated": lambda p, r: json.dumps(r)[:500],
    "binary": lambda p, r: os.urandom(2048),
    "not-utf8": lambda p, r: json.dumps(r).replace("made up", "caf\xe9").encode("latin1"),
    "nan-literal": lambda p, r: json.dumps(r).replace('"overhead_ms": 0.005', '"overhead_ms": NaN'),
    "infinity": lambda p, r: json.dumps(r).replace('"intercept": 0', '"intercept": -Infinity'),
    "deep-nesting": lambda p, r: "[" * 100_000,
    "huge": lambda p, r: b" " * (65 * 1024**2),
    "other-space": _other_space_profile,
    "gzip": lambda p, r: gzip.compress(json.dumps(r).encode()),
    "folder": lambda p, r: None,
    "missing": lambda p, r: None,
    "symlink-loop": lambda p, r: None,
}


@pytest.mark.parametrize("kind", list(PROFILE_FILES))
def test_damaged_profile_files(tmp_path, profile, kind):
    config_path, raw = profile
    path = tmp_path / "bad.json"
    content = PROFILE_FILES[kind](tmp_path, raw)
    if kind == "folder":
        path.mkdir()
    elif kind == "symlink-loop":
        _loop(path)
    elif content is not None:
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    _run_on_profile(tmp_path, config_path, path, f"profile {path}")


# -- run stores ----------------------------------------------------------------------------


def _store(path: Path, rows: list[tuple]) -> Path:
    with Store(path) as store:
        store.open_run("main", {"a": 1})
        store.record("main", "k0", {"x": 1}, {"m": 1.0}, wall_time_s=1, started_at=0,
                     finished_at=1)  # fmt: skip
    connection = sqlite3.connect(path)
    with connection:
        for sql, parameters in rows:
            connection.execute(sql, parameters)
    connection.close()
    return path


_UPDATE = "UPDATE evaluations SET {} = ? WHERE arch_key = 'k0'"
STORE_ROWS = {
    "arch-not-json": (_UPDATE.format("arch"), ("{broken",)),
    "arch-a-list": (_UPDATE.format("arch"), ("[1, 2]",)),
    "arch-deeply-nested": (_UPDATE.format("arch"), ("[" * 100_000,)),
    "arch-a-blob": (_UPDATE.format("arch"), (b"\x00\x01",)),
    "arch-huge": (_UPDATE.format("arch"), ('"' + "x" * (17 * 1024**2) + '"',)),
    "metrics-not-json": (_UPDATE.format("metrics"), ("nope",)),
    "metrics-a-number": (_UPDATE.format("metrics"), ("3",)),
    "metric-a-string": (_UPDATE.format("metrics"), ('{"m": "fast"}',)),
    "metric-null": (_UPDATE.format("metrics"), ('{"m": null}',)),
    "wall-time-text": (_UPDATE.format("wall_time_s"), ("soon",)),
    "seq-text": (_UPDATE.format("seq"), ("first",)),
    "config-not-json": ("UPDATE runs SET config = ? WHERE run_id = 'main'", ("{",)),
}


@pytest.mark.parametrize("kind", list(STORE_ROWS))
def test_damaged_store_rows_are_one_line(tmp_path, kind):
    path = _store(tmp_path / "run.sqlite", [STORE_ROWS[kind]])
    with Store(path) as store, pytest.raises(HwnasError) as excinfo:
        store.run_config("main")
        store.evaluations("main")
    message = str(excinfo.value)
    assert "\n" not in message and str(path) in message and "damaged run store" in message


@pytest.mark.parametrize(
    "kind",
    ["config-not-json", "config-a-list", "config-a-blob", "garbage-file", "a-folder",
     "zero-bytes", "another-sqlite-database"],
)  # fmt: skip
def test_damaged_store_on_resume(tmp_path, checkpoint, kind):
    """A resumed run whose store is damaged: refused in one line, the store untouched."""
    config_path, good = checkpoint
    good = good.parent / "complete" / good.name
    out = tmp_path / "out"
    out.mkdir()
    for name in (good.name, good.name + ".optim"):
        (out / name).write_bytes((good.parent / name).read_bytes())
    store = out / "run.sqlite"
    if kind == "garbage-file":
        store.write_bytes(b"SQLite format 3\0" + os.urandom(4096))
    elif kind == "a-folder":
        store.mkdir()
    elif kind == "zero-bytes":
        store.write_bytes(b"")
    elif kind == "another-sqlite-database":
        foreign = sqlite3.connect(store)
        foreign.execute("CREATE TABLE songs (title TEXT)")
        foreign.commit()
        foreign.close()
    else:
        value = {"config-not-json": "{", "config-a-list": "[1]", "config-a-blob": b"\1"}[kind]
        _store(store, [("UPDATE runs SET config = ? WHERE run_id = 'main'", (value,))])
    before = listing(out)
    result = cli("run", "--config", config_path, "--out", out, "--resume")
    assert_refused(result, out, before, store, out)


# -- benchmark tables ----------------------------------------------------------------------


def _table(path: Path, rows: list[dict] | None = None) -> Path:
    return write_csv(path, rows or toy_rows())


def _text(change: Callable[[str], str]) -> Callable[[Path], None]:
    return lambda p: p.write_text(change(p.read_text()))


def _gz(path: Path, data: bytes) -> Path:
    gz = path.with_suffix(".csv.gz")
    gz.write_bytes(data)
    return gz


def _rows_changed(change: Callable[[list[dict]], None]) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        rows = toy_rows()
        change(rows)
        write_csv(path, rows)

    return damage


TABLES: dict[str, Callable[[Path], Path | None]] = {
    "short-row": _text(lambda t: t + "8,1,conv\n"),
    "long-row": _text(lambda t: t + "8,1,conv,3,90,1,extra\n"),
    "all-nan-metrics": _rows_changed(lambda rows: [r.update(acc="nan") for r in rows]),
    "all-inf-latency": _rows_changed(lambda rows: [r.update(lat="inf") for r in rows]),
    "duplicate-arch": _rows_changed(lambda rows: rows.append(dict(rows[3]))),
    "duplicate-arch-other-metrics": _rows_changed(
        lambda rows: rows.append({**rows[0], "acc": "1"})
    ),
    "metric-not-a-number": _rows_changed(lambda rows: rows[5].update(acc="fast")),
    "metric-empty": _rows_changed(lambda rows: rows[5].update(lat="")),
    "choice-nan": _rows_changed(lambda rows: rows[0].update(width="nan")),
    "zero-bytes": lambda p: p.write_bytes(b""),
    "header-only": _text(lambda t: t.splitlines()[0] + "\n"),
    "duplicate-column": _text(lambda t: t.replace("lat", "acc", 1)),
    "missing-column": _text(lambda t: t.replace("kernel", "kern", 1)),
    "binary": lambda p: p.write_bytes(os.urandom(4096)),
    "not-utf8": lambda p: p.write_bytes(p.read_text().replace("conv", "c\xf6nv").encode("latin1")),
    "nul-bytes": lambda p: p.write_bytes(p.read_bytes() + b"\0\0\0\n"),
    "huge-field": _text(lambda t: t + "8,1," + "x" * 200_000 + ",3,1,1\n"),
    "folder": lambda p: (p.unlink(), p.mkdir()),
    "symlink-loop": lambda p: (p.unlink(), _loop(p)),
    "missing": lambda p: p.unlink(),
    "truncated-gzip": lambda p: _gz(p, gzip.compress(p.read_bytes())[:200]),
    "garbage-gzip": lambda p: _gz(p, b"\x1f\x8b\x08\x00" + os.urandom(500)),
    "zero-byte-gzip": lambda p: _gz(p, b""),
    "garbage-in-gzip": lambda p: _gz(p, gzip.compress(os.urandom(1000))),
}


@pytest.mark.parametrize("kind", list(TABLES))
def test_bad_bench_tables(tmp_path, kind):
    path = _table(tmp_path / "t.csv")
    path = TABLES[kind](path) if kind.endswith("gzip") else (TABLES[kind](path), path)[1]
    out = tmp_path / "out"
    result = cli("bench", "table", path, "--choices", "width,depth,op,kernel",
                 "--objective", "acc:max", "--objective", "lat:min",
                 "--seeds", "1", "--budget", "5",
                 "--out", out)  # fmt: skip
    line = assert_refused(result, out, None, path)
    if kind.startswith("duplicate-arch") or kind in ("short-row", "long-row"):
        assert f"{path}:" in line and "row" in line or "fields" in line


def test_an_error_after_the_progress_display_starts_is_still_exactly_one_line(tmp_path):
    root = IMAGE_FOLDERS["one-class"](tmp_path / "images")
    raw = changed(tiny_raw(), "data", {"name": "image-folder", "path": str(root)})
    path = write_config(tmp_path / "c.yaml", raw)
    result = cli("run", "--config", path, "--out", tmp_path / "out")
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1, repr(result.stderr)


def test_a_damaged_store_is_refused_before_training(tmp_path, checkpoint):
    config_path, good = checkpoint  # epoch 0: a resume would train first
    out = tmp_path / "out"
    out.mkdir()
    for name in (good.name, good.name + ".optim"):
        (out / name).write_bytes((good.parent / name).read_bytes())
    (out / "run.sqlite").write_bytes(b"SQLite format 3\0" + os.urandom(4096))
    result = cli("run", "--config", config_path, "--out", out, "--resume")
    assert result.returncode == 2 and "epoch" not in result.stderr, result.stderr
