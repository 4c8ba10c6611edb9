"""Quantized models on ONNX Runtime, made from the ONNX export of any family's extracted
sub-network (``to_onnx(family.extract(arch), example)``: input ``input``, output ``logits``).

- ``quantize_int8``: static INT8 in QDQ form (per-channel symmetric weights, activations
  calibrated with MinMax for CNNs and Percentile for transformers: ``calibration_method``),
  layers named in ``keep_fp32`` left fp32.
- ``quantize_int4``: 4-bit weight-only ``MatMulNBits`` for linear layers, AWQ-scaled
  (``awq=True``) or round-to-nearest; ``awq_scale`` gives the scaled fp32 model and what AWQ
  chose per layer.
- ``nodes_of``: the ONNX nodes a module path (``blocks.3``, ``head``) was exported to.
- Measuring: ``OnnxModule`` (run a model as a module, for a task's ``quality``),
  ``weight_bytes``, ``file_bytes``, ``qdq_report`` (Q/DQ before and after ONNX Runtime's
  optimisation and the integer kernels it fused them into).

Models go in and out as bytes; temporary files exist only while ONNX Runtime's quantizer
or optimiser needs a path.
"""

from hwnas.quantize.graph import module_of, nodes_of
from hwnas.quantize.int4 import ALPHAS, AwqLayer, awq_scale, dequantized, quantize_int4
from hwnas.quantize.int8 import calibration_method, quantize_int8
from hwnas.quantize.measure import (
    INTEGER_KERNELS,
    OnnxModule,
    file_bytes,
    optimized,
    qdq_report,
    weight_bytes,
)

__all__ = [
    "ALPHAS",
    "INTEGER_KERNELS",
    "AwqLayer",
    "OnnxModule",
    "awq_scale",
    "calibration_method",
    "dequantized",
    "file_bytes",
    "module_of",
    "nodes_of",
    "optimized",
    "qdq_report",
    "quantize_int4",
    "quantize_int8",
    "weight_bytes",
]
