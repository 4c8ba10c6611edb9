"""The language-model task: the corpus, its split, windows, tokenizers and metrics."""

import hashlib
import json
import math

import pytest
import torch
from torch import nn

from helpers import cli, python_like, random_text_task, tiny_tokenizer
from hwnas.data.text import load_python_sources, python_files, split_of, standard_library
from hwnas.errors import HwnasError
from hwnas.tasks import LanguageModel


def corpus(folder, files: int = 40):
    """``files`` Python-like files in nested folders, plus files that must be skipped."""
    for i in range(files):
        path = folder / f"pkg{i % 3}" / f"mod{i}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(python_like(20, seed=i))
    (folder / "notes.txt").write_text("not python")
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "cached.py").write_text("x = 1\n" * 100)
    (folder / "site-packages").mkdir()
    (folder / "site-packages" / "installed.py").write_text("x = 1\n" * 100)
    (folder / "link.py").symlink_to(folder / "pkg0" / "mod0.py")
    return folder


def test_the_split_is_fixed_by_path_and_cuts_no_file(tmp_path):
    root = corpus(tmp_path / "c")
    files = python_files(root)
    assert len(files) == 40 and all("pycache" not in str(f) for f in files)
    first = load_python_sources(root, context=16, val_fraction=0.2, test_fraction=0.2)
    again = load_python_sources(root, 7, 16, val_fraction=0.2, test_fraction=0.2)  # any seed
    for split in ("train", "val", "test"):
        assert torch.equal(first.split(split), again.split(split))
    assert first.fingerprint == again.fingerprint
    total = sum(f.stat().st_size for f in files)
    assert sum(first.byte_counts().values()) == total and sum(first.files.values()) == 40
    for file in files:  # each file's bytes lie whole in the split its path hashes to
        relative = file.relative_to(root).as_posix()
        stream = bytes(first.split(split_of(relative, 0.2, 0.2)).numpy())
        assert file.read_bytes() in stream
    # another file elsewhere does not move any existing file
    (root / "pkg9").mkdir()
    (root / "pkg9" / "new.py").write_bytes(python_like(5, seed=99))
    grown = load_python_sources(root, context=16, val_fraction=0.2, test_fraction=0.2)
    assert grown.fingerprint != first.fingerprint
    for split in ("train", "val", "test"):
        assert sum(grown.files.values()) == 41 and grown.files[split] >= first.files[split]


def test_the_standard_library_is_the_default_corpus():
    root = standard_library()
    assert (root / "os.py").is_file()
    data = load_python_sources(context=64, eval_windows=4)
    counts = data.byte_counts()
    assert data.root == str(root) and counts["train"] > 10 * counts["val"]
    assert min(counts.values()) > 10**5


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda p: p, "holds no .py files"),
        (lambda p: p / "missing", "no such folder"),
        (lambda p: (p / "one.py").write_text("x = 1\n") and p, "needs more than context"),
    ],
)
def test_unusable_corpora_are_refused(tmp_path, make, fragment):
    (tmp_path / "readme.txt").write_text("no code here")
    with pytest.raises(HwnasError, match=fragment):
        load_python_sources(make(tmp_path), context=16)


def test_windows_targets_and_quality():
    task = random_text_task(context=16)
    x, y = next(task.train_batches(4, torch.Generator().manual_seed(0)))
    assert x.shape == y.shape == (4, 16) and x.dtype == torch.int64
    assert torch.equal(x[:, 1:], y[:, :-1])  # targets are the inputs shifted by one byte
    again, _ = next(task.train_batches(4, torch.Generator().manual_seed(0)))
    assert torch.equal(x, again)
    assert task.steps_per_epoch(5) == math.ceil(32 / 5)
    assert sum(len(b[0]) for b in task.train_batches(5, torch.Generator())) == 32

    class Uniform(nn.Module):
        def forward(self, ids):
            return torch.zeros(*ids.shape, 256)

    class Oracle(nn.Module):
        """Knows every evaluation window's next bytes: perfect accuracy, ~0 bits."""

        def forward(self, ids):
            starts = task._eval_starts("val")
            _, targets = task._windows("val", starts)
            return 50.0 * nn.functional.one_hot(targets[: len(ids)], 256).float()

    quality = task.quality(Uniform(), "val")
    assert quality["bits_per_byte"] == pytest.approx(8.0)
    assert quality["next_token_accuracy"] < 5
    oracle = task.quality(Oracle(), "val", batch_size=100)
    assert oracle["bits_per_byte"] < 1e-3 and oracle["next_token_accuracy"] == 100.0
    calibration = task.calibration_inputs(6, seed=3)
    assert calibration.shape == (6, 16) and torch.equal(calibration, task.calibration_inputs(6, 3))


def test_a_task_reports_its_spec_and_identity(tmp_path):
    data = load_python_sources(
        corpus(tmp_path / "c"), context=24, val_fraction=0.2, test_fraction=0.2
    )
    task = LanguageModel(data)
    assert task.spec.causal and task.spec.input.shape == (24,) and task.spec.outputs == 256
    assert task.identity()["corpus"] == task.data.fingerprint
    assert task.default_objective == "bits_per_byte:min"


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ("data: {name: python, path: EMPTY}", "holds no .py files"),
        ("data: {name: python, context: 1024}\nsupernet: {name: transformer}",
         "longer than the transformer allows"),
        ("data: {name: python}", "supernet mobilenet cannot serve a language-model task"),
        ("data: {name: python}\nsupernet: {name: transformer, overrides: "
         "{attentions: [softmax, cosine]}}", "unknown operator 'cosine'"),
        ("data: {name: digits, context: 64}", "unknown option(s) context"),
        ("data: {name: python}\nsupernet: {name: transformer}\n"
         "search: {objectives: ['accuracy:max']}", "no metric 'accuracy'"),
    ],
)  # fmt: skip
def test_bad_language_model_runs_fail_in_one_line_before_writing(tmp_path, config, fragment):
    empty = tmp_path / "empty"
    empty.mkdir()
    path = tmp_path / "c.yaml"
    path.write_text(config.replace("EMPTY", str(empty)))
    out = tmp_path / "out"
    r = cli("run", "--config", path, "--out", out)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], r.stderr
    assert not out.exists()


# -- a model's own tokenizer -----------------------------------------------------------------
@pytest.fixture(scope="module")
def tokenized_corpus(tmp_path_factory):
    """A corpus with multi-byte characters and bytes that are not UTF-8, and a byte-level
    BPE tokenizer trained on part of it."""
    pytest.importorskip("tokenizers")
    root = corpus(tmp_path_factory.mktemp("tokenized") / "c")
    (root / "pkg0" / "unicode.py").write_bytes("# café ∑ 𝔘 — naïve\nx = 'é'\n".encode() * 30)
    (root / "pkg1" / "latin1.py").write_bytes(b"# caf\xe9 \xff\xfe\nx = 1\n" * 30)
    texts = [p.read_text(errors="replace") for p in python_files(root)[:10]]
    return root, tiny_tokenizer(root.parent / "tokenizer.json", texts)


@pytest.mark.parametrize("byte_level", [True, False])
def test_a_tokenizer_charges_every_byte_of_text_exactly_once(tokenized_corpus, byte_level):
    """Bits per byte divides by the bytes of text: however the tokenizer merges, splits,
    drops whitespace or meets bytes that are not UTF-8, the bytes charged to the tokens of a
    split add up to the split's bytes."""
    root, tokenizer = tokenized_corpus
    if not byte_level:
        texts = [p.read_text(errors="replace") for p in python_files(root)[:10]]
        tokenizer = tiny_tokenizer(root.parent / "words.json", texts, byte_level=False)
    options = {"context": 16, "val_fraction": 0.2, "test_fraction": 0.2}
    as_bytes = load_python_sources(root, **options)
    as_tokens = load_python_sources(root, **options, tokenizer=str(tokenizer))
    assert as_tokens.byte_counts() == as_bytes.byte_counts()
    for split in ("train", "val", "test"):
        tokens, charged = as_tokens.split(split), as_tokens.token_bytes[split]
        assert len(tokens) == len(charged) < len(as_bytes.split(split))  # merged into fewer
        assert int(tokens.min()) >= 0 and int(tokens.max()) < as_tokens.vocab_size
        assert int(charged.min()) >= 0
    task = LanguageModel(as_tokens)
    assert task.spec.input.vocab_size == task.spec.outputs == as_tokens.vocab_size <= 300
    assert task.identity()["tokenizer"]["sha256"] == as_tokens.tokenizer["sha256"]
    assert task.split_sizes()["val"]["unit"] == "tokens"


def test_bits_per_byte_with_a_tokenizer_is_per_byte_of_text(tokenized_corpus):
    """A model that knows nothing (uniform over V ids) pays log2(V) bits a token: over the
    windows evaluated that is log2(V) x tokens / bytes bits per byte, not log2(V)."""
    root, tokenizer = tokenized_corpus
    data = load_python_sources(root, context=16, eval_windows=6, val_fraction=0.2,
                               test_fraction=0.2, tokenizer=str(tokenizer))  # fmt: skip
    task = LanguageModel(data)
    vocab = data.vocab_size

    class Uniform(nn.Module):
        def forward(self, x):
            return torch.zeros(*x.shape, vocab)

    starts = task._eval_starts("val")
    offsets = starts[:, None] + torch.arange(1, 17)
    text_bytes = int(data.token_bytes["val"][offsets].sum())
    expected = math.log2(vocab) * offsets.numel() / text_bytes
    assert task.quality(Uniform(), "val")["bits_per_byte"] == pytest.approx(expected, rel=1e-6)
    assert expected < math.log2(vocab)  # tokens stand for more than one byte each


def test_a_run_reads_its_text_with_the_configured_tokenizer(tokenized_corpus, tmp_path):
    root, tokenizer = tokenized_corpus
    config = tmp_path / "c.yaml"
    config.write_text(f"""
data: {{name: python, path: {root}, context: 16, windows_per_epoch: 32, eval_windows: 8,
        tokenizer: {tokenizer}}}
supernet: {{name: transformer, overrides: {{widths: [16], depths: [1, 2], heads: [1, 2],
            head_dim: 8, max_context: 64}}}}
train: {{epochs: 1, batch_size: 8}}
search: {{budget: 3, calibration_images: 8}}
""")
    out = tmp_path / "out"
    r = cli("run", "--config", config, "--out", out)
    assert r.returncode == 0, r.stderr
    summary = json.loads((out / "summary.json").read_text())
    tokenizer = summary["task"]["tokenizer"]
    assert tokenizer["vocab_size"] <= 300
    metadata = json.loads((out / "models" / "knee.json").read_text())
    assert metadata["preprocessing"]["tokenizer"]["sha256"] == tokenizer["sha256"]
    beside = (out / "models" / "tokenizer.json").read_bytes()  # what the models read
    assert hashlib.sha256(beside).hexdigest() == tokenizer["sha256"]


def test_a_tokenizer_is_parsed_once_while_its_file_is_unchanged(tokenized_corpus, tmp_path):
    from hwnas.data.tokenizer import load_tokenizer

    _, tokenizer = tokenized_corpus
    copy = tmp_path / "tokenizer.json"
    copy.write_bytes(tokenizer.read_bytes())
    first = load_tokenizer(copy)
    assert load_tokenizer(copy) is first
    tiny_tokenizer(copy, ["y = 2\n" * 40], vocab=270)  # rewritten: read again
    again = load_tokenizer(copy)
    assert again is not first and again.sha256 != first.sha256
