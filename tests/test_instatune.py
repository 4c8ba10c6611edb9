"""InstaTune: a dense model made elastic while fine-tuned, importance from activations."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import (
    FAST_LATENCY_CONFIG,
    cli,
    python_like,
    random_text_task,
    tiny_tokenizer,
    token_spec,
)
from hwnas.config import TrainConfig, validated
from hwnas.errors import HwnasError
from hwnas.families import build_family
from hwnas.progress import SilentProgress
from hwnas.train import SandwichTrainer, resolve_settings

torch.set_num_threads(1)

TINY_LM = {"widths": [16, 32], "depths": [1, 2, 3], "heads": [1, 2], "head_dim": 8,
           "mlp_ratios": [1, 2], "attentions": ["softmax"], "feed_forwards": ["mlp"],
           "max_context": 64}  # fmt: skip


def test_activation_importance_drops_the_idle_layer_and_sorts_idle_units_last():
    """A layer whose output projections are zero passes the stream through unchanged: least
    block influence, so depth drops it first. Neurons with zero input weights and a head with
    zero values never activate: they go last, where narrower sub-networks leave them."""
    torch.manual_seed(0)
    net = build_family("transformer", TINY_LM, token_spec(16)).eval()
    idle, layer = net.layers[1], net.layers[2]
    with torch.no_grad():
        idle.o.zero_()
        idle.down.zero_()
        layer.up[:5].zero_()
        layer.v[:8].zero_()  # head 0 (head_dim 8)
    x = net.example_input(2)
    net.set_active(net.teacher_arch())
    before = net(x)
    net.sort_by_importance(net.example_input(16, torch.Generator().manual_seed(1)))
    assert net.running_layers(2) == [0, 2] and net.running_layers(3) == [0, 1, 2]
    rows_zero = (layer.up == 0).all(dim=1)
    assert rows_zero[-5:].all() and not rows_zero[:-5].any()  # idle neurons last
    assert torch.all(layer.v[-8:] == 0) and torch.all(layer.v[:8] != 0)
    net.set_active(net.teacher_arch())
    torch.testing.assert_close(net(x), before, atol=1e-5, rtol=1e-4)


def test_a_frozen_teacher_trains_every_sub_network_the_largest_included():
    task = random_text_task(context=16)
    torch.manual_seed(0)
    model = build_family("transformer", TINY_LM, task.spec)
    teacher = model.extract(model.teacher_arch())
    frozen = {k: v.clone() for k, v in teacher.state_dict().items()}
    train = TrainConfig(epochs=1, batch_size=8, teacher_only=0.0, random_subnets=0)
    settings = resolve_settings(train, type(model), type(task))
    largest = model.layers[0].q.detach().clone()
    trainer = SandwichTrainer(model, task, settings, teacher=teacher)
    record = trainer.train_epoch(SilentProgress())
    assert not torch.equal(model.layers[0].q, largest)  # the largest sub-network learned
    for name, value in teacher.state_dict().items():
        assert torch.equal(value, frozen[name]), name  # the dense model did not
    assert np.isfinite(record["loss"])


def _corpus(folder):
    for i in range(120):
        (folder / f"p{i % 5}").mkdir(parents=True, exist_ok=True)
        (folder / f"p{i % 5}" / f"m{i}.py").write_bytes(python_like(8, seed=i))
    return folder


def _config(tmp_path, epochs: int, family: str = "transformer", overrides=None) -> str:
    corpus = _corpus(tmp_path / "corpus")
    config = tmp_path / "lm.yaml"
    overrides = TINY_LM if overrides is None else overrides
    config.write_text(f"""
data: {{name: python, path: {corpus}, context: 16, windows_per_epoch: 64, eval_windows: 16}}
supernet: {{name: {family}, overrides: {json.dumps(overrides)}}}
train: {{epochs: {epochs}, batch_size: 8}}
search: {{budget: 4, calibration_images: 16}}
latency: {FAST_LATENCY_CONFIG}
""")
    return str(config)


def test_instatune_from_a_dense_model_end_to_end(tmp_path):
    config = _config(tmp_path, epochs=2)
    r = cli("train", "--dense", "--config", config, "--out", tmp_path / "dense")
    assert r.returncode == 0, r.stderr
    dense = tmp_path / "dense" / "supernet.safetensors"
    r = cli("instatune", "--model", dense, "--config", config, "--out", tmp_path / "tuned",
            "--epochs", 1)  # fmt: skip
    assert r.returncode == 0, r.stderr
    summary = json.loads((tmp_path / "tuned" / "summary.json").read_text())
    info = summary["instatune"]
    assert info["model"] == str(dense) and info["trained_dense"] is True
    assert summary["title"].startswith("hwnas instatune")
    assert summary["training_settings"]["teacher_only"] == 0.0
    assert len(summary["training"]) == 1 and summary["front"]
    dense_bpb = info["dense_val_metrics"]["bits_per_byte"]
    assert 0 < dense_bpb < 8
    for label in ("knee", "most_accurate", "fastest"):
        assert summary["exported"][label]["max_abs_diff"] <= 1e-4
    # resuming with another dense model is refused: the fine-tuning started from this one
    other = tmp_path / "other"
    r = cli("train", "--dense", "--config", config, "--out", other, "--seed", 1)
    assert r.returncode == 0, r.stderr
    r = cli("instatune", "--model", other / "supernet.safetensors", "--config", config,
            "--out", tmp_path / "tuned", "--resume")  # fmt: skip
    assert r.returncode == 2 and "other settings" in r.stderr, r.stderr


@pytest.mark.parametrize(
    ("model", "fragment"),
    [("none.safetensors", "does not exist"), ("dense.txt", "corrupt or not safetensors")],
)
def test_instatune_refuses_a_model_it_cannot_start_from(tmp_path, model, fragment):
    config = _config(tmp_path, epochs=1)
    (tmp_path / "dense.txt").write_text("not a checkpoint")
    out = tmp_path / "tuned"
    r = cli("instatune", "--model", tmp_path / model, "--config", config, "--out", out)
    assert r.returncode == 2 and fragment in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not out.exists()


def test_instatune_refuses_a_dense_model_of_another_network(tmp_path):
    config = _config(tmp_path, epochs=1)
    r = cli("train", "--dense", "--config", config, "--out", tmp_path / "dense")
    assert r.returncode == 0, r.stderr
    wider = tmp_path / "wider.yaml"
    wider.write_text(Path(config).read_text().replace('"widths": [16, 32]', '"widths": [16, 48]'))
    out = tmp_path / "tuned"
    r = cli("instatune", "--model", tmp_path / "dense" / "supernet.safetensors", "--config",
            wider, "--out", out)  # fmt: skip
    assert r.returncode == 2 and "does not fit this model" in r.stderr, r.stderr
    assert not out.exists()


def test_dense_training_does_not_shrink():
    with pytest.raises(HwnasError, match="dense trains the largest network alone"):
        validated({"train": {"dense": True, "progressive": True, "epochs": 4}})


def _hugging_face_llama(folder, vocab: int) -> None:
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2,
                                      vocab_size=vocab, max_position_embeddings=64)  # fmt: skip
    transformers.LlamaForCausalLM(config).save_pretrained(folder)


@pytest.mark.parametrize("tokenizer", [False, True], ids=["bytes", "own-tokenizer"])
def test_instatune_from_a_hugging_face_llama_folder(tmp_path, tokenizer):
    """A pretrained LLaMA folder is the dense model: its own shape, not the config's
    default network's, and every sub-network distilled from it. A folder with a
    ``tokenizer.json`` has its text read by it: the model's vocabulary (padded past the
    tokenizer's ids here, as many models are) is the task's, bits per byte charged per byte
    of text; without one, the text is bytes."""
    _hugging_face_llama(tmp_path / "hf", vocab=320 if tokenizer else 256)
    if tokenizer:
        pytest.importorskip("tokenizers")
        texts = [python_like(40, seed=i).decode() for i in range(5)]
        tiny_tokenizer(tmp_path / "hf" / "tokenizer.json", texts, vocab=300)
    config = _config(tmp_path, epochs=1, family="llama", overrides={})
    out = tmp_path / "tuned"
    r = cli("instatune", "--model", tmp_path / "hf", "--config", config, "--out", out)
    assert r.returncode == 0, r.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["supernet"]["config"]["hidden_size"] == 32
    assert summary["instatune"]["model"] == str(tmp_path / "hf") and summary["front"]
    assert summary["exported"]["knee"]["max_abs_diff"] <= 1e-4
    assert 0 < summary["instatune"]["dense_val_metrics"]["bits_per_byte"] < 20
    val = summary["splits"]["val"]
    if tokenizer:
        assert summary["task"]["tokenizer"]["vocab_size"] == 320
        assert summary["settings"]["data"]["tokenizer"] == str(tmp_path / "hf")
        assert val["unit"] == "tokens" and val["bytes"] > val["size"]
    else:
        assert "tokenizer" not in summary["task"] and val["unit"] == "bytes"


def test_instatune_refuses_a_folder_of_another_vocabulary_or_family(tmp_path):
    _hugging_face_llama(tmp_path / "hf", vocab=260)
    for family, overrides, fragment in (
        ("llama", {}, "takes 260 token ids, this task gives 256"),
        ("transformer", TINY_LM, "loads no pretrained model folders"),
        ("llama", {}, "has tokenizer.model but no tokenizer.json"),
    ):
        if "tokenizer.model" in fragment:
            (tmp_path / "hf" / "tokenizer.model").write_bytes(b"\0")
        config = _config(tmp_path, epochs=1, family=family, overrides=overrides)
        out = tmp_path / "tuned"
        r = cli("instatune", "--model", tmp_path / "hf", "--config", config, "--out", out)
        assert r.returncode == 2 and fragment in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and not out.exists()
