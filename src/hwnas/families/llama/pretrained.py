"""A local Hugging Face LLaMA folder as the dense super-network, with no network access.

Reads ``config.json`` (``LlamaConfig`` fields) and the weights from ``model.safetensors`` or
the shards a ``model.safetensors.index.json`` names. Only safetensors are read: a
``pytorch_model.bin`` is a pickle, which can run code, so it is never opened. Each file is
opened once (``safe_open``, memory-mapped) and each tensor read once, checked against the
shape the config implies before it is read, and handed to the network as it is (converted
only when stored in another float type): the network is built on the meta device, so no
random weights are drawn and no weight is copied again (``load_state_dict(assign=True)``).

Every bad input is a one-line ``HwnasError`` naming the file and what is wrong with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import safe_open

from hwnas.errors import HwnasError, KeyedError, one_line
from hwnas.families.llama.config import LlamaConfig
from hwnas.files import read_json_limited

if TYPE_CHECKING:
    from hwnas.families.llama.network import ElasticLlama

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
INDEX = "model.safetensors.index.json"
LLAMA_TYPES = ("llama",)
LLAMA_ARCHITECTURES = ("LlamaForCausalLM", "LlamaModel")
MAX_JSON_BYTES = 64 << 20
FLOAT_TYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16,
               "BF16": torch.bfloat16}  # fmt: skip
IGNORED_SUFFIXES = ("rotary_emb.inv_freq",)  # older checkpoints store the derived angles
CHECKPOINT_KEYS = ("vocab_size", "max_context", "hidden_size", "num_layers", "num_heads",
                   "num_kv_heads", "head_dim", "intermediate_size", "rms_norm_eps",
                   "rope_theta", "tie_embeddings")  # fmt: skip
"""What a pretrained folder decides; overrides choose the space and the context only."""


def load_llama(
    folder: str | Path, context: int | None = None, overrides: Mapping[str, Any] | None = None
) -> ElasticLlama:
    """The dense super-network of Hugging Face folder ``folder``, its weights loaded.

    ``context``: the tokens a deployed sub-network sees (default: the config's default,
    at most the model's ``max_position_embeddings``); ``overrides``: the space
    (``depths``, ``kv_heads``, ``intermediate_ratios``)."""
    from hwnas.families.llama.network import ElasticLlama

    folder = Path(folder)
    if not folder.is_dir():
        what = "not a folder" if folder.exists() else "no such folder"
        raise HwnasError(f"llama model {folder}: {what}")
    config = read_config(folder, context, overrides)
    with torch.device("meta"):  # shapes only: the weights come from the files
        net = ElasticLlama(config)
    shapes = {name: tuple(t.shape) for name, t in net.state_dict().items()}
    state = read_weights(folder, config, shapes)
    state["depth_order"] = torch.arange(config.num_layers)  # the first layers, until measured
    net.load_state_dict(state, assign=True, strict=True)
    return net


# -- config.json ---------------------------------------------------------------------------
def read_config(
    folder: Path, context: int | None = None, overrides: Mapping[str, Any] | None = None
) -> LlamaConfig:
    """The family config of ``folder/config.json``; ``context`` and ``overrides`` as in
    ``load_llama``."""
    path = folder / CONFIG
    raw = read_json_limited(path, "llama config", MAX_JSON_BYTES)
    if not isinstance(raw, dict):
        raise HwnasError(f"llama config {path}: expected a JSON object")
    values = _dense_shape(raw, path)
    overrides = dict(overrides or {})
    for key in (*CHECKPOINT_KEYS, "context"):
        if key in overrides:
            raise HwnasError(f"llama overrides: {key!r} is set by {path}, not by overrides")
    default = LlamaConfig.model_fields["context"].default
    values["context"] = context if context is not None else min(default, values["max_context"])
    try:
        return LlamaConfig.from_dict({**values, **overrides})
    except KeyedError as exc:
        raise HwnasError(f"llama config {path}: {exc.key}: {exc.detail}") from None


def _dense_shape(raw: Mapping[str, Any], path: Path) -> dict[str, Any]:
    """``LlamaConfig`` values of a Hugging Face ``config.json``, after checking it describes
    a model this family computes exactly (a LLaMA decoder without biases or rope scaling)."""
    where = f"llama config {path}"
    model_type, architectures = raw.get("model_type"), raw.get("architectures")
    if model_type not in LLAMA_TYPES:
        known = ", ".join(LLAMA_TYPES)
        raise HwnasError(f"{where}: model_type {model_type!r} is not a LLaMA-style decoder "
                         f"(known: {known})")  # fmt: skip
    if architectures is not None and (
        not isinstance(architectures, list)
        or not set(map(str, architectures)) <= set(LLAMA_ARCHITECTURES)
    ):
        raise HwnasError(f"{where}: architectures {architectures!r} are not LLaMA-style "
                         f"(known: {', '.join(LLAMA_ARCHITECTURES)})")  # fmt: skip

    def integer(key: str, default: int | None = None) -> int:
        value = raw.get(key, default)
        if value is None:
            raise HwnasError(f"{where}: missing {key!r}")
        if type(value) is not int or value < 1:
            raise HwnasError(f"{where}: {key} must be a positive integer, got {value!r}")
        return value

    def number(value: Any, key: str) -> float:
        if type(value) not in (int, float) or not value > 0:
            raise HwnasError(f"{where}: {key} must be a positive number, got {value!r}")
        return float(value)

    hidden, heads = integer("hidden_size"), integer("num_attention_heads")
    kv_heads = integer("num_key_value_heads", heads)
    head_dim = raw.get("head_dim")
    if head_dim is not None:
        head_dim = integer("head_dim")
    elif hidden % heads:
        raise HwnasError(f"{where}: hidden_size {hidden} is not divisible by "
                         f"num_attention_heads {heads}")  # fmt: skip
    if heads % kv_heads:
        raise HwnasError(f"{where}: num_attention_heads {heads} is not a multiple of "
                         f"num_key_value_heads {kv_heads}")  # fmt: skip
    if raw.get("hidden_act", "silu") != "silu":
        raise HwnasError(f"{where}: hidden_act {raw['hidden_act']!r}; LLaMA's SwiGLU is silu")
    for key in ("attention_bias", "mlp_bias"):
        if raw.get(key, False) is not False:
            raise HwnasError(f"{where}: {key} is set; this family's projections have no bias")
    rope = raw.get("rope_parameters") or {}  # transformers 5; rope_theta before it
    if not isinstance(rope, dict):
        raise HwnasError(f"{where}: rope_parameters must be an object, got {rope!r}")
    for scaling in (rope, raw.get("rope_scaling") or {}):
        kind = scaling.get("rope_type", scaling.get("type", "default"))
        if kind != "default":
            raise HwnasError(f"{where}: rope scaling {kind!r} is not supported "
                             "(only the default rotary positions)")  # fmt: skip
    theta = rope.get("rope_theta", raw.get("rope_theta", 10_000.0))
    tie = raw.get("tie_word_embeddings", False)  # transformers' LlamaConfig default
    if type(tie) is not bool:
        raise HwnasError(f"{where}: tie_word_embeddings must be true or false, got {tie!r}")
    return {
        "vocab_size": integer("vocab_size"),
        "max_context": integer("max_position_embeddings", 2048),
        "hidden_size": hidden,
        "num_layers": integer("num_hidden_layers"),
        "num_heads": heads,
        "num_kv_heads": kv_heads,
        "head_dim": head_dim,
        "intermediate_size": integer("intermediate_size"),
        "rms_norm_eps": number(raw.get("rms_norm_eps", 1e-6), "rms_norm_eps"),
        "rope_theta": number(theta, "rope_theta"),
        "tie_embeddings": tie,
    }


# -- safetensors weights ---------------------------------------------------------------------
def hf_names(config: LlamaConfig, prefix: str = "model.") -> dict[str, str]:
    """Hugging Face tensor name -> the super-network's parameter, for ``LlamaForCausalLM``
    (``prefix`` ``model.``) or a bare ``LlamaModel`` (no prefix, tied embeddings)."""
    names = {f"{prefix}embed_tokens.weight": "token", f"{prefix}norm.weight": "norm"}
    if not config.tie_embeddings:
        names["lm_head.weight"] = "head"
    parts = (("input_layernorm", "norm1"), ("self_attn.q_proj", "q"), ("self_attn.k_proj", "k"),
             ("self_attn.v_proj", "v"), ("self_attn.o_proj", "o"),
             ("post_attention_layernorm", "norm2"), ("mlp.gate_proj", "gate"),
             ("mlp.up_proj", "up"), ("mlp.down_proj", "down"))  # fmt: skip
    for i in range(config.num_layers):
        for theirs, ours in parts:
            names[f"{prefix}layers.{i}.{theirs}.weight"] = f"layers.{i}.{ours}"
    return names


def _ignored(name: str, config: LlamaConfig) -> bool:
    """Tensors a checkpoint may hold that the network derives: rotary angles, and a tied
    head saved beside the embedding it equals."""
    return name.endswith(IGNORED_SUFFIXES) or (config.tie_embeddings and name == "lm_head.weight")


def _locate(folder: Path) -> tuple[Path, dict[str, Path] | None]:
    """The file that names the tensors (the index, else the single file) and, for a sharded
    checkpoint, each tensor's shard."""
    index, single = folder / INDEX, folder / WEIGHTS
    if index.exists():
        where = f"safetensors index {index}"
        raw = read_json_limited(index, "safetensors index", MAX_JSON_BYTES)
        shards = raw.get("weight_map") if isinstance(raw, dict) else None
        if not isinstance(shards, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in shards.items()
        ):
            raise HwnasError(f"{where}: needs a weight_map of tensor names to file names")
        files = {}
        for file in sorted(set(shards.values())):
            if Path(file).name != file or file in ("", ".", ".."):
                raise HwnasError(f"{where}: shard {file!r} is not a file name in {folder}")
            if not (folder / file).is_file():
                raise HwnasError(f"{where}: names shard {file}, which is missing")
            files[file] = folder / file
        return index, {name: files[file] for name, file in shards.items()}
    if single.is_file():
        return single, None
    found = [p.name for p in folder.glob("*.bin")] + [p.name for p in folder.glob("*.pt")]
    also = f" (pickles are never read: {', '.join(sorted(found))})" if found else ""
    raise HwnasError(f"llama model {folder}: no {WEIGHTS} or {INDEX}{also}")


def _damaged(path: Path, exc: Exception) -> HwnasError:
    return HwnasError(f"safetensors file {path}: damaged ({one_line(exc)})")


def _open(path: Path) -> Any:
    try:
        return safe_open(str(path), framework="pt")
    except Exception as exc:  # SafetensorError, OSError: a header that does not parse
        raise _damaged(path, exc) from None


def read_weights(
    folder: Path, config: LlamaConfig, shapes: Mapping[str, tuple[int, ...]]
) -> dict[str, torch.Tensor]:
    """The super-network's state dict, read from ``folder``'s safetensors: each file opened
    once, each tensor read once after its name, type and shape are checked (``shapes``:
    the super-network's parameter shapes)."""
    listing, shards = _locate(folder)
    with ExitStack() as files:
        handles: dict[Path, tuple[Any, set[str]]] = {}

        def handle(path: Path) -> tuple[Any, set[str]]:
            """The open file and the names it holds."""
            if path not in handles:
                opened = files.enter_context(_open(path))
                handles[path] = opened, set(opened.keys())
            return handles[path]

        if shards is None:
            where = f"safetensors file {listing}"
            stored = dict.fromkeys(sorted(handle(listing)[1]), listing)
        else:
            where, stored = f"safetensors index {listing}", shards
        prefix = "" if "embed_tokens.weight" in stored else "model."
        wanted = hf_names(config, prefix)
        for name in wanted:
            if name not in stored:
                raise HwnasError(f"{where}: tensor {name!r} is missing")
        for name in stored:
            if name not in wanted and not _ignored(name, config):
                raise HwnasError(f"{where}: unexpected tensor {name!r} (not part of a "
                                 "LLaMA-style decoder of this config)")  # fmt: skip
        return {ours: _read(handle(stored[name]), stored[name], name, shapes[ours])
                for name, ours in wanted.items()}  # fmt: skip


def _read(
    opened: tuple[Any, set[str]], path: Path, name: str, shape: tuple[int, ...]
) -> torch.Tensor:
    """Tensor ``name`` of an open file, as float32, read once after its type and shape are
    checked against ``shape``."""
    where, (handle, names) = f"safetensors file {path}", opened
    if name not in names:
        raise HwnasError(f"{where}: tensor {name!r} is missing")
    try:
        view = handle.get_slice(name)
        dtype, stored = view.get_dtype(), tuple(view.get_shape())
    except Exception as exc:
        raise _damaged(path, exc) from None
    if dtype not in FLOAT_TYPES:
        raise HwnasError(f"{where}: tensor {name!r} holds {dtype}, not floats")
    if stored != shape:
        raise HwnasError(f"{where}: tensor {name!r} has shape {list(stored)}, the config "
                         f"implies {list(shape)}")  # fmt: skip
    try:
        tensor = handle.get_tensor(name)
    except Exception as exc:
        raise _damaged(path, exc) from None
    return tensor.to(torch.float32)  # no copy when already float32
