"""What the search measures on a quantized model: its outputs (a module-like ONNX Runtime
session, so a task's ``quality`` runs it unchanged), its weight bytes and file size, and how
many Q/DQ nodes ONNX Runtime leaves after optimising it, with the integer kernels it chose.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from hwnas.hardware.measure import onnx_session
from hwnas.quantize.graph import fixed_batch

INTEGER_KERNELS = frozenset({
    "QLinearConv", "ConvInteger", "MatMulInteger", "QLinearMatMul", "MatMulIntegerToFloat",
    "DynamicQuantizeMatMul", "MatMulNBits", "QGemm", "QAttention", "QLinearAdd", "QLinearMul",
    "QLinearGlobalAveragePool", "QLinearAveragePool", "QLinearSigmoid", "QLinearLeakyRelu",
    "QLinearConcat", "QLinearSoftmax", "QLinearWhere", "QLinearReduceMean",
})  # fmt: skip
"""Op types that compute on integers (or, ``MatMulNBits``, on packed 4-bit weights)."""
FLOAT_KERNELS = ("Conv", "FusedConv", "MatMul", "FusedMatMul", "Gemm")
_INT4 = {onnx.TensorProto.INT4, onnx.TensorProto.UINT4}


class OnnxModule:
    """An ONNX model run by ONNX Runtime that behaves as an ``nn.Module`` does for inference:
    ``module(x)`` on a torch tensor returns a torch tensor, ``eval()`` returns the module.
    A model exported with a fixed batch is fed in slices of that batch (the last one padded).
    """

    def __init__(self, model: bytes, threads: int = 1) -> None:
        self.model = model
        self.session = onnx_session(model, threads)
        self.batch = fixed_batch(onnx.load_from_string(model))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        array = x.detach().cpu().numpy()
        if self.batch is None or len(array) == self.batch:
            return torch.from_numpy(self.session.run(None, {"input": array})[0])
        outs = []
        for start in range(0, len(array), self.batch):
            part = array[start : start + self.batch]
            short = self.batch - len(part)
            if short:
                part = np.concatenate([part, np.zeros_like(array[:1]).repeat(short, 0)])
            out = self.session.run(None, {"input": part})[0]
            outs.append(out[: len(out) - short])
        return torch.from_numpy(np.concatenate(outs))

    forward = __call__

    def eval(self) -> OnnxModule:
        return self

    def train(self, mode: bool = True) -> OnnxModule:
        if mode:
            raise RuntimeError("an ONNX model cannot be trained")
        return self


def weight_bytes(model: bytes) -> dict[str, int]:
    """Initializer bytes by element type (``float32``, ``int8``, ``int4``, ...) and ``total``:
    int4 counts half a byte a value, whether stored as ONNX's INT4/UINT4 or packed two a byte
    into uint8 for ``MatMulNBits`` (its weights and zero points)."""
    proto = onnx.load_from_string(model)
    packed = {name for node in proto.graph.node if node.op_type == "MatMulNBits"
              for i, name in enumerate(node.input) if i in (1, 3)}  # fmt: skip
    counts: Counter[str] = Counter()
    for tensor in proto.graph.initializer:
        elements = int(np.prod(tensor.dims)) if tensor.dims else 1
        if tensor.data_type in _INT4:
            counts["int4"] += -(-elements // 2)
        elif tensor.name in packed:
            counts["int4"] += elements  # already two values a byte
        else:
            dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type)
            counts[str(np.dtype(dtype))] += elements * np.dtype(dtype).itemsize
    return {**dict(sorted(counts.items())), "total": sum(counts.values())}


def file_bytes(model: bytes) -> int:
    """Bytes of the model as written to a file (one serialised protobuf, no external data)."""
    return len(model)


def optimized(model: bytes) -> onnx.ModelProto:
    """The graph ONNX Runtime runs after its optimisations (``ORT_ENABLE_ALL``, CPU)."""
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="hwnas-ort-") as folder:
        path = Path(folder) / "optimized.onnx"
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.optimized_model_filepath = str(path)
        options.intra_op_num_threads = 1
        options.log_severity_level = 3
        ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        return onnx.load(str(path))


def qdq_report(model: bytes) -> dict[str, Any]:
    """Q/DQ nodes in the saved model and after ONNX Runtime optimised it, the integer kernels
    it runs, and the float compute kernels (``Conv``, ``MatMul``, ``Gemm`` and their fused
    forms) left: whether Q/DQ were fused into integer kernels or run as conversions."""
    before = Counter(n.op_type for n in onnx.load_from_string(model).graph.node)
    after = Counter(n.op_type for n in optimized(model).graph.node)

    def qdq(counts: Counter) -> dict[str, int]:
        return {"quantize": counts["QuantizeLinear"], "dequantize": counts["DequantizeLinear"]}

    return {
        "saved": qdq(before),
        "optimized": qdq(after),
        "integer_kernels": {op: n for op, n in sorted(after.items()) if op in INTEGER_KERNELS},
        "float_kernels": {op: n for op, n in sorted(after.items()) if op in FLOAT_KERNELS},
    }
