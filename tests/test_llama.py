"""The LLaMA-style family against Hugging Face's own LLaMA: a checkpoint saved by
``transformers`` loads with no network and computes the same logits, its sub-networks export
to ONNX with the same outputs, and every bad folder is one line naming the file.

The contract every family holds (extraction, cost, sorting, training) is tested over the
registry in ``test_families.py``; here what only this family does."""

from __future__ import annotations

import inspect
import json
import shutil

import numpy as np
import pytest
import torch

from helpers import image_spec
from hwnas.errors import HwnasError
from hwnas.families import ElasticLlama, load_llama
from hwnas.families.llama import pretrained
from hwnas.hardware.measure import onnx_session, to_onnx

torch.set_num_threads(1)

TINY = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 260,
        "max_position_embeddings": 64, "rms_norm_eps": 1e-5, "rope_theta": 500.0}  # fmt: skip
"""Two key/value heads of two query heads each, so grouped-query attention is exercised;
a small rope_theta so 16 positions turn the rotary angles well away from zero."""

CONTEXT = 16


def save_tiny(folder, tie: bool, shard: bool = False, seed: int = 0):
    """A random ``LlamaForCausalLM`` saved by ``save_pretrained`` into ``folder``, its norm
    gains moved off one so a comparison cannot pass on a degenerate network."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(seed)
    config = transformers.LlamaConfig(**TINY, tie_word_embeddings=tie)
    model = transformers.LlamaForCausalLM(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.add_(0.2 * torch.randn_like(p))
    options = {"max_shard_size": "20KB"} if shard else {}
    if "safe_serialization" in inspect.signature(model.save_pretrained).parameters:
        options["safe_serialization"] = True  # transformers 4; 5 writes only safetensors
    model.save_pretrained(folder, **options)
    return model


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Folders of the three layouts, with the models that wrote them."""
    root = tmp_path_factory.mktemp("llama")
    layouts = {"tied": (True, False), "untied": (False, False), "sharded": (False, True)}
    return {name: (root / name, save_tiny(root / name, tie, shard))
            for name, (tie, shard) in layouts.items()}  # fmt: skip


def ids(batch: int = 2, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, TINY["vocab_size"], (batch, CONTEXT), generator=generator)


@pytest.mark.parametrize("layout", ["tied", "untied", "sharded"])
def test_parity_with_transformers(saved, layout):
    folder, reference = saved[layout]
    if layout == "sharded":
        assert (folder / pretrained.INDEX).exists() and not (folder / pretrained.WEIGHTS).exists()
    net = load_llama(folder, context=CONTEXT).eval()
    assert net.config.tie_embeddings == (layout == "tied")
    assert net.config.dim == TINY["hidden_size"] // TINY["num_attention_heads"]
    assert net.active == net.teacher_arch()  # the dense model is the largest arch
    x = ids()
    with torch.no_grad():
        expected = reference(x).logits
        got, extracted = net(x), net.extract(net.teacher_arch())(x)
    assert expected.abs().max() > 0.1
    assert (got - expected).abs().max() <= 1e-4
    assert (extracted - expected).abs().max() <= 1e-4
    params = sum(p.numel() for p in reference.parameters())
    assert net.cost(net.teacher_arch()).params == params  # tied weights counted once


def test_each_file_is_opened_once_and_each_tensor_read_once(saved, monkeypatch):
    opened, read = [], []
    real = pretrained.safe_open

    class Counting:
        def __init__(self, path, framework):
            opened.append(path)
            self.handle = real(path, framework=framework)

        def __enter__(self):
            self.handle.__enter__()
            return self

        def __exit__(self, *exc):
            return self.handle.__exit__(*exc)

        def keys(self):
            return self.handle.keys()

        def get_slice(self, name):
            return self.handle.get_slice(name)

        def get_tensor(self, name):
            read.append(name)
            return self.handle.get_tensor(name)

    monkeypatch.setattr(pretrained, "safe_open", Counting)
    folder, reference = saved["sharded"]
    load_llama(folder)
    shards = set(json.loads((folder / pretrained.INDEX).read_text())["weight_map"].values())
    assert sorted(opened) == sorted(str(folder / s) for s in shards)
    assert sorted(read) == sorted(n for n, _ in reference.named_parameters())


def test_an_extracted_subnetwork_exports_to_onnx_with_the_same_outputs(saved):
    folder, _ = saved["untied"]
    net = load_llama(folder, context=CONTEXT, overrides={"depths": [1, 2]}).eval()
    arch = net.space().make({"depth": 2, "l0.kv_heads": 1, "l0.ffn": 0.5, "l1.kv_heads": 2,
                             "l1.ffn": 0.75})  # fmt: skip
    sub = net.extract(arch)
    session = onnx_session(to_onnx(sub, ids(1), dynamic_batch=True), threads=1)
    x = ids(3, seed=1)
    with torch.no_grad():
        net.set_active(arch)
        expected, supernet = sub(x), net(x)
    (got,) = session.run(None, {"input": x.numpy()})
    assert (supernet - expected).abs().max() <= 1e-5
    assert np.abs(got - expected.numpy()).max() <= 1e-4
    assert net.label(arch) == "d2 h6 i80"


def test_heads_go_in_whole_groups_and_sorting_keeps_the_dense_function(saved):
    folder, _ = saved["tied"]
    net = load_llama(folder, context=CONTEXT).eval()
    options = {c.name: c.options for c in net.space().choices}
    assert options["l0.kv_heads"] == (1, 2)  # of 2 key/value heads for 4 query heads
    one_group = net.space().make({**net.teacher_arch().to_dict(), "l0.kv_heads": 1})
    attention = net.extract(one_group).blocks[0].attention
    assert (attention.q.out_features, attention.k.out_features) == (16, 8)  # 2 heads, 1 group
    x = ids()
    with torch.no_grad():
        before = net(x)
        net.sort_by_importance()
        torch.testing.assert_close(net(x), before, atol=1e-5, rtol=1e-4)


def test_calibration_orders_the_layers_depth_drops_and_keeps_the_dense_function(saved):
    folder, _ = saved["untied"]
    net = load_llama(folder, context=CONTEXT, overrides={"depths": [1, 2]}).eval()
    x = ids()
    with torch.no_grad():
        dense = net(x)
        net.sort_by_importance(ids(4, seed=2))
        torch.testing.assert_close(net(x), dense, atol=1e-5, rtol=1e-4)
    assert sorted(net.depth_order.tolist()) == [0, 1]
    net.depth_order.copy_(torch.tensor([1, 0]))  # a depth of 1 keeps the second layer
    arch = net.space().make({"depth": 1, "l0.kv_heads": 1, "l0.ffn": 0.5})
    assert net.running_layers(1) == [1] and net.quantizable_modules(arch) == {"l0": ("blocks.0",)}
    sub = net.extract(arch)
    assert torch.equal(sub.blocks[0].attention.k.weight, net.layers[1].k[:8])
    with torch.no_grad():
        net.set_active(arch)
        torch.testing.assert_close(net(x), sub(x), atol=1e-5, rtol=1e-4)


def test_a_run_config_is_checked_before_any_data_loads():
    from hwnas.config import validated

    config = validated({"supernet": {"name": "llama", "overrides": {"num_kv_heads": 4}},
                        "data": {"name": "python"}})  # fmt: skip
    assert config.supernet.name == "llama"
    with pytest.raises(HwnasError, match=r"^supernet.overrides.*num_heads 4 is not a multiple"):
        validated({"supernet": {"name": "llama", "overrides": {"num_kv_heads": 3}},
                   "data": {"name": "python"}})  # fmt: skip
    with pytest.raises(HwnasError, match="cannot serve"):
        ElasticLlama.for_task({}, image_spec())


# -- bad folders: one line, naming the file -----------------------------------------------
def _config(folder, **changes):
    path = folder / "config.json"
    raw = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            raw.pop(key, None)
        else:
            raw[key] = value
    path.write_text(json.dumps(raw))


def _rewrite(path, drop=(), reshape=()):
    """Rewrite a safetensors file without the tensors in ``drop`` and with those in
    ``reshape`` cut to their first row."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(path), framework="pt") as handle:
        names = handle.keys()  # a list (safe_open is not iterable)
        tensors = {n: handle.get_tensor(n) for n in names if n not in drop}
    for name in reshape:
        tensors[name] = tensors[name][:1].contiguous()
    save_file(tensors, str(path))


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _first_shard(folder):
    return sorted(folder.glob("model-*.safetensors"))[0]


BAD = {
    "no folder": (None, "no such folder", "missing"),
    "no config": (lambda f: (f / "config.json").unlink(), "no such file", "config.json"),
    "not json": (lambda f: (f / "config.json").write_text("{"), "not JSON", "config.json"),
    "model type": (lambda f: _config(f, model_type="gpt2"), "'gpt2' is not a LLaMA",
                   "config.json"),
    "architectures": (lambda f: _config(f, architectures=["GPT2LMHeadModel"]),
                      "are not LLaMA-style", "config.json"),
    "missing key": (lambda f: _config(f, hidden_size=None), "missing 'hidden_size'",
                    "config.json"),
    "heads of hidden": (lambda f: _config(f, hidden_size=30, head_dim=None),
                        "hidden_size 30 is not divisible by num_attention_heads 4",
                        "config.json"),
    "kv heads": (lambda f: _config(f, num_key_value_heads=3),
                 "num_attention_heads 4 is not a multiple of num_key_value_heads 3",
                 "config.json"),
    "rope scaling": (lambda f: _config(f, rope_scaling={"rope_type": "llama3", "factor": 8.0},
                                       rope_parameters=None),
                     "rope scaling 'llama3' is not supported", "config.json"),
    "no weights": (lambda f: (f / "model.safetensors").rename(f / "pytorch_model.bin"),
                   "pickles are never read: pytorch_model.bin", "model.safetensors"),
    "missing tensor": (lambda f: _rewrite(f / "model.safetensors",
                                          drop={"model.layers.1.mlp.up_proj.weight"}),
                       "tensor 'model.layers.1.mlp.up_proj.weight' is missing",
                       "model.safetensors"),
    "wrong shape": (lambda f: _rewrite(f / "model.safetensors",
                                       reshape={"model.layers.0.self_attn.k_proj.weight"}),
                    "has shape [1, 32], the config implies [16, 32]", "model.safetensors"),
    "damaged": (lambda f: (f / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00"
                                                                b"\x00\x00{not a header}"),
                "damaged", "model.safetensors"),
    "truncated": (lambda f: _truncate(f / "model.safetensors"), "damaged", "model.safetensors"),
    "missing shard": (lambda f: _first_shard(f).unlink(), "names shard model-00001-of-",
                      "model.safetensors.index.json"),
    "bad index": (lambda f: (f / "model.safetensors.index.json").write_text("[]"),
                  "needs a weight_map", "model.safetensors.index.json"),
    "shard tensor": (lambda f: _rewrite(_first_shard(f), drop={"model.embed_tokens.weight"}),
                     "tensor 'model.embed_tokens.weight' is missing", "model-00001-of-"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_folder_is_one_line_naming_the_file(saved, tmp_path, case):
    damage, message, file = BAD[case]
    layout = "sharded" if "shard" in case or "index" in case else "untied"
    folder = tmp_path / "model"
    if damage is not None:
        shutil.copytree(saved[layout][0], folder)
        damage(folder)
    else:
        folder = tmp_path / "missing"
    with pytest.raises(HwnasError) as caught:
        load_llama(folder)
    text = str(caught.value)
    assert "\n" not in text and message in text and file in text, text


def test_checkpoint_keys_cannot_be_overridden(saved):
    folder, _ = saved["tied"]
    with pytest.raises(HwnasError, match="'hidden_size' is set by .*config.json"):
        load_llama(folder, overrides={"hidden_size": 64})
    with pytest.raises(HwnasError, match="context 128 is longer than max_context 64"):
        load_llama(folder, context=128)
