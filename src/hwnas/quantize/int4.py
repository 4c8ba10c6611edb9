"""INT4 weight-only quantization of linear layers: ONNX Runtime's block-wise ``MatMulNBits``,
with activation-aware scaling as in AWQ (Lin et al., 2024) or plain round-to-nearest (RTN).

Every ``MatMul`` with a constant 2-D weight ``W`` (K x N, ``y = x @ W``) becomes one
``MatMulNBits`` node: for each output column, blocks of ``block_size`` consecutive input rows
share a float scale and a 4-bit zero point (asymmetric round-to-nearest over the block's
range, zero included), two weights a byte. The nodes are written here, not by ONNX Runtime's
quantizer, so the error the AWQ search minimises is exactly that of the model written.

AWQ. A few input channels of a linear layer carry much larger activations than the rest,
and their weights matter most; RTN gives them no more precision than any other. AWQ scales
input channel ``k`` of the weight up by ``s_k = mean|x_k|^alpha`` (normalised so that
``max(s) * min(s) = 1``) before quantizing and divides the activation by ``s_k``, which the
preceding operation absorbs, so the function is unchanged before quantization and the
salient channels lose less to rounding after. ``alpha`` is chosen per layer from ``ALPHAS``
by the layer's output error ``|x W - (x / s) Q(diag(s) W)|^2`` on the calibration activations
(``alpha = 0`` is RTN, so AWQ never does worse on them). Layers reading the same tensor
(attention's q, k and v) share one scale, chosen on their summed error.

The calibration activations come from running the fp32 model in ONNX Runtime with each
layer's input added as a graph output.

Folding ``1 / s`` into the operation before, so the graph keeps its nodes: walking back from
the layer's input through ops that keep the channel axis last (``Reshape``/``Transpose`` of
heads, attention's ``weights @ v``, a gated ``silu(gate) * up``), the first of:

- ``LayerNormalization``: its gain and bias, divided by ``s``;
- ``Mul`` by a constant (an RMSNorm's gain, as exported): that constant;
- a ``MatMul`` with a constant weight (the previous linear layer, optionally with a bias
  ``Add``): that weight's output columns and bias (attention's o reads v this way; a GLU's
  down reads up).

Each fold is checked on calibration inputs before it is kept: the model with a random scale
folded in (and multiplied into the layer's weights) must compute what it computed before; a
candidate that fails (the channel axis moved, the tensor had other readers) is dropped.
Where no fold holds (an MLP's down projection after GELU, which does not commute with
scaling), ``unfoldable`` says what happens: ``"skip"`` (the default) quantizes that layer
with RTN and leaves the graph as it was; ``"mul"`` inserts a ``Mul`` by ``1 / s`` before the
layer (one elementwise op, what AWQ does for GELU models).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper

from hwnas.errors import HwnasError
from hwnas.quantize.graph import (
    batches,
    constant,
    drop_unused_initializers,
    materialise_identities,
    nodes_of_all,
    producers,
    run,
    run_with_outputs,
    set_initializer,
    unique_name,
)

ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0)
BLOCK_SIZES = (16, 32, 64, 128, 256)
UNFOLDABLE = ("skip", "mul")
MAX_ROWS = 4096  # calibration rows (tokens) the grid search evaluates a layer's error on
_THROUGH = ("Reshape", "Transpose", "Squeeze", "Unsqueeze", "Identity")


@dataclass(frozen=True)
class AwqLayer:
    """What AWQ did to the linear layers reading one tensor: the chosen ``alpha``, the output
    error (sum over the layers of the mean squared error on the calibration activations)
    with it and with RTN, and where ``1 / s`` went (``"LayerNormalization <node>"``,
    ``"MatMul <node>"``, ``"Mul inserted"``), or ``None`` when the layers kept RTN: because
    no ``alpha > 0`` beat it (``skipped="rtn best"``) or no fold held (``"no fold"``; the
    alpha it would have taken is in ``alpha``, its error in ``error``)."""

    nodes: tuple[str, ...]
    alpha: float
    error: float
    rtn_error: float
    folded_into: str | None
    skipped: str | None = None


# -- round-to-nearest block quantization in MatMulNBits' layout ------------------------------
def rtn_blocks(weight: np.ndarray, block_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``weight`` (K x N) as 4-bit codes (N, blocks, block_size), scales and zero points (N,
    blocks): asymmetric round-to-nearest over each block's range with zero in it (K is padded
    with zeros to whole blocks)."""
    k, n = weight.shape
    blocks = -(-k // block_size)
    padded = np.zeros((blocks * block_size, n), dtype=np.float32)
    padded[:k] = weight
    w = padded.T.reshape(n, blocks, block_size)
    low = np.minimum(w.min(-1), 0.0)
    high = np.maximum(w.max(-1), 0.0)
    scale = ((high - low) / 15).astype(np.float32)
    safe = np.where(scale == 0, 1.0, scale).astype(np.float32)
    zero = np.clip(np.round(-low / safe), 0, 15)
    codes = np.clip(np.round(w / safe[..., None]) + zero[..., None], 0, 15)
    return codes.astype(np.uint8), scale, zero.astype(np.uint8)


def dequantized(weight: np.ndarray, block_size: int) -> np.ndarray:
    """What ``MatMulNBits`` computes with in place of ``weight``: its RTN round trip."""
    codes, scale, zero = rtn_blocks(weight, block_size)
    w = (codes.astype(np.float32) - zero[..., None]) * scale[..., None]
    n = weight.shape[1]
    return w.reshape(n, -1).T[: weight.shape[0]]


def _pack(codes: np.ndarray) -> np.ndarray:
    """Two 4-bit values a byte along the last axis, the first in the low nibble."""
    if codes.shape[-1] % 2:
        codes = np.concatenate([codes, np.zeros_like(codes[..., :1])], axis=-1)
    return (codes[..., 0::2] | (codes[..., 1::2] << 4)).astype(np.uint8)


def _matmul_nbits(
    model: onnx.ModelProto, node: onnx.NodeProto, weight: np.ndarray, block_size: int,
    accuracy_level: int | None,
) -> onnx.NodeProto:  # fmt: skip
    codes, scale, zero = rtn_blocks(weight, block_size)
    base = unique_name(model, node.input[1] + "_int4")
    names = [f"{base}_weight", f"{base}_scales", f"{base}_zero_points"]
    for name, value in zip(names, (_pack(codes), scale, _pack(zero)), strict=True):
        set_initializer(model, name, value)
    k, n = weight.shape
    attributes = {"K": k, "N": n, "bits": 4, "block_size": block_size}
    if accuracy_level:
        attributes["accuracy_level"] = accuracy_level
    return helper.make_node("MatMulNBits", [node.input[0], *names], list(node.output),
                            name=node.name + "_Q4", domain="com.microsoft",
                            **attributes)  # fmt: skip


# -- finding the linear layers -------------------------------------------------------------
def linear_nodes(model: onnx.ModelProto, excluded: set[str] = frozenset()) -> list[onnx.NodeProto]:
    """``MatMul`` nodes with a constant 2-D weight and an activation input, in graph order."""
    found = []
    for node in model.graph.node:
        if node.op_type != "MatMul" or node.name in excluded:
            continue
        weight = constant(model, node.input[1])
        if weight is not None and weight.ndim == 2 and constant(model, node.input[0]) is None:
            found.append(node)
    return found


def _groups(nodes: Sequence[onnx.NodeProto]) -> dict[str, list[onnx.NodeProto]]:
    groups: dict[str, list[onnx.NodeProto]] = defaultdict(list)
    for node in nodes:
        groups[node.input[0]].append(node)
    return dict(groups)


# -- folding -------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Fold:
    """Where ``1 / s`` can go: ``kind`` is ``norm``, ``mul`` or ``linear``; ``node`` the node
    whose constant(s) change; ``index`` the constant input (``mul``); ``bias`` a following
    bias ``Add`` (``linear``)."""

    kind: str
    node: onnx.NodeProto
    index: int = 1
    bias: onnx.NodeProto | None = None

    @property
    def label(self) -> str:
        return f"{self.node.op_type} {self.node.name}"


def _candidates(model: onnx.ModelProto, tensor: str, depth: int = 8) -> list[_Fold]:
    """Folds for a scale on the last axis of ``tensor``, nearest first (unchecked)."""
    made = producers(model)
    found: list[_Fold] = []

    def walk(name: str, left: int) -> None:
        node = made.get(name)
        if node is None or left == 0 or len(found) >= 4:
            return
        constants = [constant(model, i) is not None for i in node.input]
        if node.op_type == "LayerNormalization" and all(constants[1:]):
            found.append(_Fold("norm", node))
        elif node.op_type == "MatMul" and constants[1] and not constants[0]:
            found.append(_Fold("linear", node))
        elif node.op_type == "Add" and sum(constants) == 1:
            other = node.input[constants.index(False)]
            before = made.get(other)
            if (before is not None and before.op_type == "MatMul"
                    and constant(model, before.input[1]) is not None):  # fmt: skip
                found.append(_Fold("linear", before, bias=node))
        elif node.op_type == "Mul" and sum(constants) == 1:
            found.append(_Fold("mul", node, index=constants.index(True)))
        elif node.op_type == "Mul" and not any(constants):
            walk(node.input[1], left - 1)
            walk(node.input[0], left - 1)
        elif node.op_type == "MatMul" and not any(constants):
            walk(node.input[1], left - 1)  # weights @ v: v's columns are the output's
        elif node.op_type in _THROUGH or (node.op_type == "Div" and not constants[0]):
            walk(node.input[0], left - 1)

    walk(tensor, depth)
    return found


def _scaled_rows(vector: np.ndarray, inverse: np.ndarray) -> np.ndarray:
    """A constant broadcast along the last axis times ``inverse``, or None if it cannot."""
    if vector.shape[-1:] not in ((1,), inverse.shape):
        return None
    return (vector * inverse).astype(vector.dtype)


def _apply_fold(model: onnx.ModelProto, fold: _Fold, scale: np.ndarray) -> bool:
    """Divide what ``fold`` names by ``scale`` in place (fresh initializers, so nothing else
    sharing a tensor changes); False if the constants' shapes do not fit."""
    inverse = (1.0 / scale).astype(np.float32)
    node = fold.node
    if fold.kind == "norm":
        slots = [1, 2] if len(node.input) > 2 and node.input[2] else [1]
    elif fold.kind == "mul":
        slots = [fold.index]
    else:
        slots = [1]
    changes = []
    for slot in slots:
        value = constant(model, node.input[slot])
        new = _scaled_rows(value, inverse) if value is not None else None
        if new is None:
            return False
        changes.append((node, slot, new))
    if fold.bias is not None:
        slot = [constant(model, i) is not None for i in fold.bias.input].index(True)
        new = _scaled_rows(constant(model, fold.bias.input[slot]), inverse)
        if new is None:
            return False
        changes.append((fold.bias, slot, new))
    for owner, slot, value in changes:
        name = unique_name(model, owner.input[slot] + "_awq")
        set_initializer(model, name, value)
        owner.input[slot] = name
    return True


def _scale_weights(model: onnx.ModelProto, nodes: Sequence[onnx.NodeProto], scale: np.ndarray):
    for node in nodes:
        weight = constant(model, node.input[1])
        name = unique_name(model, node.input[1] + "_awq")
        set_initializer(model, name, (weight * scale[:, None]).astype(np.float32))
        node.input[1] = name


def _insert_mul(model: onnx.ModelProto, tensor: str, nodes, scale: np.ndarray) -> None:
    inverse = unique_name(model, tensor + "_awq_inverse")
    set_initializer(model, inverse, (1.0 / scale).astype(np.float32))
    output = unique_name(model, tensor + "_awq")
    mul = helper.make_node("Mul", [tensor, inverse], [output], name=output)
    position = min(list(model.graph.node).index(n) for n in nodes)
    model.graph.node.insert(position, mul)
    for node in nodes:
        node.input[0] = output


def _node(model: onnx.ModelProto, name: str) -> onnx.NodeProto:
    return next(n for n in model.graph.node if n.name == name)


def _valid_fold(
    model: onnx.ModelProto, group: Sequence[str], fold: _Fold, feeds, reference: np.ndarray,
    rng: np.random.Generator,
) -> bool:  # fmt: skip
    """Whether folding a random scale into ``fold`` (and into the group's weights) keeps the
    model's outputs on ``feeds``."""
    trial = onnx.ModelProto.FromString(model.SerializeToString())
    k = constant(trial, _node(trial, group[0]).input[1]).shape[0]
    scale = np.exp(rng.uniform(-0.7, 0.7, k)).astype(np.float32)
    if not _apply_fold(trial, _copy_fold(trial, fold), scale):
        return False
    _scale_weights(trial, [_node(trial, n) for n in group], scale)
    got = run(trial, feeds)
    bound = 1e-4 * max(1.0, float(np.nanmax(np.abs(reference))))
    return bool(np.nanmax(np.abs(got - reference)) <= bound)


def _copy_fold(model: onnx.ModelProto, fold: _Fold) -> _Fold:
    """``fold`` naming the same nodes of a copy of its model."""
    bias = _node(model, fold.bias.name) if fold.bias is not None else None
    return _Fold(fold.kind, _node(model, fold.node.name), fold.index, bias)


# -- the search ----------------------------------------------------------------------------
def _errors(x: np.ndarray, weights: Sequence[np.ndarray], scale: np.ndarray, block: int) -> float:
    total = 0.0
    xs = x / scale
    for w in weights:
        exact = x @ w
        approx = xs @ dequantized(w * scale[:, None], block)
        total += float(np.mean((exact - approx) ** 2))
    return total


def _awq_scale(x: np.ndarray, alpha: float) -> np.ndarray:
    magnitude = np.maximum(np.abs(x).mean(0), 1e-8)
    scale = magnitude**alpha
    scale = scale / np.sqrt(scale.max() * scale.min())
    return np.clip(scale, 1e-4, 1e4).astype(np.float32)


def _validate(block_size: int, alphas: Sequence[float], unfoldable: str) -> None:
    if block_size not in BLOCK_SIZES:
        raise HwnasError(f"int4 block size {block_size} is not one of "
                         f"{', '.join(map(str, BLOCK_SIZES))}")  # fmt: skip
    if not alphas or any(not 0 <= a <= 1 for a in alphas):
        raise HwnasError(f"AWQ alphas must be a non-empty list in [0, 1], got {list(alphas)}")
    if unfoldable not in UNFOLDABLE:
        raise HwnasError(f"unfoldable must be one of {', '.join(UNFOLDABLE)}, got {unfoldable!r}")


def awq_scale(
    model: bytes,
    calibration,
    block_size: int = 32,
    keep_fp32: Sequence[str] = (),
    alphas: Sequence[float] = ALPHAS,
    unfoldable: str = "skip",
    batch_size: int = 16,
    seed: int = 0,
) -> tuple[bytes, list[AwqLayer]]:
    """``model`` with AWQ's scales applied and still fp32 (same function, up to rounding),
    and what was done per group of linear layers (see the module docstring)."""
    _validate(block_size, alphas, unfoldable)
    proto = materialise_identities(onnx.load_from_string(model))
    feeds = batches(calibration, batch_size, proto)
    excluded = set(nodes_of_all(proto, keep_fp32))
    groups = _groups(linear_nodes(proto, excluded))
    if not groups:
        return proto.SerializeToString(), []
    activations = run_with_outputs(proto, feeds, list(groups))
    rng = np.random.default_rng(seed)
    check = feeds[:2]
    reference = run(proto, check)
    report = []
    for tensor, nodes in groups.items():
        names = [n.name for n in nodes]
        x = np.concatenate([a.reshape(-1, a.shape[-1]) for a in activations[tensor]])
        if len(x) > MAX_ROWS:
            x = x[rng.choice(len(x), MAX_ROWS, replace=False)]
        x = x.astype(np.float32)
        weights = [constant(proto, _node(proto, n).input[1]) for n in names]
        rtn = _errors(x, weights, np.ones(x.shape[1], np.float32), block_size)
        trials = [(_errors(x, weights, s, block_size), a, s)
                  for a in alphas if a > 0 for s in [_awq_scale(x, a)]]  # fmt: skip
        best = min(trials, key=lambda t: t[0], default=None)
        if best is None or best[0] >= rtn:
            report.append(AwqLayer(tuple(names), 0.0, rtn, rtn, None, "rtn best"))
            continue
        error, alpha, scale = best
        fold = None
        for candidate in _candidates(proto, tensor):
            if _valid_fold(proto, names, candidate, check, reference, rng):
                fold = candidate
                break
        if fold is not None:
            _apply_fold(proto, fold, scale)
            where = fold.label
        elif unfoldable == "mul":  # before just these layers: other readers keep the tensor
            _insert_mul(proto, tensor, [_node(proto, n) for n in names], scale)
            where = "Mul inserted"
        else:
            report.append(AwqLayer(tuple(names), alpha, error, rtn, None, "no fold"))
            continue
        _scale_weights(proto, [_node(proto, n) for n in names], scale)
        report.append(AwqLayer(tuple(names), alpha, error, rtn, where))
    return proto.SerializeToString(), report


def quantize_int4(
    model: bytes,
    calibration=None,
    awq: bool = True,
    block_size: int = 32,
    keep_fp32: Sequence[str] = (),
    alphas: Sequence[float] = ALPHAS,
    unfoldable: str = "skip",
    accuracy_level: int | None = None,
    batch_size: int = 16,
) -> bytes:
    """``model`` (ONNX bytes) with every linear layer (``MatMul`` with a constant 2-D weight)
    not in ``keep_fp32`` as a 4-bit ``MatMulNBits``, as ONNX bytes.

    ``awq``: activation-aware scales from ``calibration`` (required then; none is an
    ``HwnasError``); ``awq=False`` is plain round-to-nearest and needs no calibration.
    ``accuracy_level`` is ``MatMulNBits``' (None: fp32 arithmetic on dequantized weights;
    4: int8 activations)."""
    _validate(block_size, alphas, unfoldable)
    if awq:
        if calibration is None:
            raise HwnasError("AWQ needs calibration samples, got none")
        model, _ = awq_scale(model, calibration, block_size, keep_fp32, alphas, unfoldable,
                             batch_size)  # fmt: skip
    proto = materialise_identities(onnx.load_from_string(model))
    excluded = set(nodes_of_all(proto, keep_fp32))
    targets = linear_nodes(proto, excluded)
    replaced = {}
    for node in targets:
        weight = constant(proto, node.input[1]).astype(np.float32)
        replaced[node.name] = _matmul_nbits(proto, node, weight, block_size, accuracy_level)
    nodes = [replaced.get(n.name, n) for n in proto.graph.node]
    del proto.graph.node[:]
    proto.graph.node.extend(nodes)
    if replaced and not any(o.domain == "com.microsoft" for o in proto.opset_import):
        proto.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    drop_unused_initializers(proto)
    return proto.SerializeToString()
