"""INT8 static quantization in QDQ form with ONNX Runtime's tools, fp32 kept where asked.

Weights are int8, symmetric, one scale per output channel; activations uint8 with a zero
point, one scale per tensor, calibrated on inputs the caller gives (the task's calibration
split). The ops of ``OP_TYPES`` (those with integer kernels, and those that move int8 data
unchanged) get QuantizeLinear/DequantizeLinear pairs, so that ONNX Runtime's graph optimiser
can fuse whole runs of ops into integer kernels (``QLinearConv``, ``QLinearAdd``, ...).
Layers named in ``keep_fp32`` (module paths, ``nodes_of``) are left out: their nodes read
and write fp32 and their weights stay fp32.

Calibration method (``method=None``, ``calibration_method``): MinMax for CNNs, Percentile
(99.99) for models with LayerNormalization (transformers), chosen by measurement
(``bench/quantization.py --calibration``: each family's small instance trained 300 steps,
MobileNet on digits at 32x32, transformer on the standard library at a 64-byte context,
64 calibration inputs, ONNX Runtime 1.32):

- MobileNet, accuracy on 270 validation images (one image is 0.37 points): fp32 97.4;
  MinMax 93.3, Entropy 93.3, Percentile 99.9 / 99.99 / 99.999: 93.7 / 92.2 / 93.3. No method
  is better by more than one image (and 99.99 is three images worse); MinMax needs no
  histogram.
  Per-channel weights take the weights' outliers, and the activations of a small CNN have
  no long tails worth clipping.
- Transformer, bits per byte: fp32 3.470; MinMax 3.533, Entropy 3.533, Percentile 99.9 /
  99.99 / 99.999: 3.528 / 3.516 / 3.524. Percentile 99.99 recovers a quarter of MinMax's
  loss (one seed: a small but consistent gain at every percentile) by clipping rare large
  values, which otherwise stretch a tensor's one scale over its 256 levels.
- Entropy gave exactly MinMax's ranges on both (ONNX Runtime's KL search kept the full
  range on these histograms), so it is never the default.
- All took under 1 s for these models (0.3-0.5 s); the cost does not decide it here.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import onnx

from hwnas.errors import HwnasError
from hwnas.quantize.graph import (
    batches,
    drop_unused_initializers,
    materialise_identities,
    nodes_of_all,
    read_names,
)

METHODS = ("minmax", "entropy", "percentile")
PERCENTILE = 99.99
OP_TYPES = ("Conv", "MatMul", "Gemm", "Add", "Mul", "Relu", "Clip", "LeakyRelu", "Sigmoid",
            "GlobalAveragePool", "AveragePool", "MaxPool", "Concat", "Flatten", "Reshape",
            "Transpose", "Squeeze", "Unsqueeze")  # fmt: skip
"""Ops given Q/DQ pairs: those with integer kernels or that move int8 data unchanged. Left
out: ``Where``, ``Softmax`` (a causal mask's -inf has no int8 range), ``LayerNormalization``,
``Gather`` and routing ops (``TopK``, ``CumSum``), which ONNX Runtime runs in float anyway,
so Q/DQ around them would only add conversions."""


def calibration_method(model: onnx.ModelProto) -> str:
    """The default calibration for ``model``: ``percentile`` if it has a LayerNormalization
    (a transformer), else ``minmax`` (measured: see the module docstring)."""
    norms = any(n.op_type == "LayerNormalization" for n in model.graph.node)
    return "percentile" if norms else "minmax"


class _Batches:
    """ONNX Runtime's ``CalibrationDataReader`` over numpy batches of the model input."""

    def __init__(self, feeds) -> None:
        self._feeds = list(feeds)
        self._next = 0

    def get_next(self):
        if self._next >= len(self._feeds):
            return None
        self._next += 1
        return {"input": self._feeds[self._next - 1]}

    def rewind(self) -> None:
        self._next = 0


def quantize_int8(
    model: bytes,
    calibration,
    keep_fp32: Sequence[str] = (),
    method: str | None = None,
    batch_size: int = 16,
    percentile: float = PERCENTILE,
    op_types: Sequence[str] = OP_TYPES,
) -> bytes:
    """``model`` (ONNX bytes, input ``input``) quantized to INT8 QDQ, as ONNX bytes.

    ``calibration``: a tensor or array of inputs (batch first) or a sequence of batches;
    none is an ``HwnasError``. ``keep_fp32``: module paths (``blocks.3``, ``head``) or node
    names whose nodes stay fp32; a path matching no node is an ``HwnasError``. ``method``:
    ``minmax``, ``entropy`` or ``percentile`` (at ``percentile``); None: ``calibration_method``
    (see the module docstring). ``op_types``: the ops given Q/DQ pairs (``OP_TYPES``).
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    proto = materialise_identities(onnx.load_from_string(model))
    method = method or calibration_method(proto)
    if method not in METHODS:
        raise HwnasError(f"calibration method {method!r} is unknown; choose from "
                         f"{', '.join(METHODS)}")  # fmt: skip
    feeds = batches(calibration, batch_size, proto)
    excluded = nodes_of_all(proto, keep_fp32)

    class Reader(_Batches, CalibrationDataReader):
        pass

    calibrate = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }[method]
    options = {"WeightSymmetric": True, "ActivationSymmetric": False, "CalibPercentile": percentile}
    with tempfile.TemporaryDirectory(prefix="hwnas-int8-") as folder, _quiet():
        path = Path(folder) / "int8.onnx"
        quantize_static(
            proto,
            path,
            Reader(feeds),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=list(op_types),
            nodes_to_exclude=excluded,
            calibrate_method=calibrate,
            extra_options=options,
        )
        quantized = onnx.load(str(path))
    _unquantize_inputs(quantized, set(excluded))
    return quantized.SerializeToString()


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """ONNX Runtime's quantizer prints progress to stdout and logs advice on the root logger;
    a caller printing JSON (the bench) or a progress bar must not receive either."""
    root = logging.getLogger()

    def keep(record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or "quantization" not in record.pathname

    root.addFilter(keep)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.removeFilter(keep)


def _unquantize_inputs(model: onnx.ModelProto, names: set[str]) -> None:
    """Make excluded nodes read the fp32 tensors their neighbours' Q/DQ pairs round: an
    activation ``x -> Q -> DQ`` feeding an excluded node is read as ``x`` itself."""
    made = {out: node for node in model.graph.node for out in node.output}
    for node in model.graph.node:
        if node.name not in names:
            continue
        for i, name in enumerate(node.input):
            dq = made.get(name)
            if dq is None or dq.op_type != "DequantizeLinear":
                continue
            q = made.get(dq.input[0])
            if q is not None and q.op_type == "QuantizeLinear":
                node.input[i] = q.input[0]
    _drop_dead(model)


def _drop_dead(model: onnx.ModelProto) -> None:
    """Remove nodes whose outputs nobody reads (Q/DQ pairs left without readers)."""
    while True:
        read = read_names(model)
        dead = [n for n in model.graph.node if not any(o in read for o in n.output)]
        if not dead:
            break
        for node in dead:
            model.graph.node.remove(node)
    drop_unused_initializers(model)
