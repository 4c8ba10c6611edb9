"""hwnas.quantize on small models the tests make: INT8 QDQ, INT4 AWQ and RTN, the layer map
and the measurements."""

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from helpers import image_spec, random_text_task, token_spec
from hwnas.errors import HwnasError
from hwnas.families import FAMILIES, build_family
from hwnas.hardware.measure import to_onnx
from hwnas.quantize import (
    OnnxModule,
    awq_scale,
    dequantized,
    module_of,
    nodes_of,
    qdq_report,
    quantize_int4,
    quantize_int8,
    weight_bytes,
)
from hwnas.quantize.graph import run
from test_families import perturbed

torch.set_num_threads(1)

SPECS = {"mobilenet": image_spec(3, 10, 16), "transformer": token_spec(16)}


def exported(family: str, arch_changes=None, seed: int = 0):
    """(family, arch, its module, its ONNX bytes) of a small perturbed family's teacher."""
    torch.manual_seed(seed)
    net = perturbed(build_family(family, FAMILIES[family].small_overrides, SPECS[family]))
    arch = {**net.teacher_arch().to_dict(), **(arch_changes or {})}
    module = net.extract(arch).eval()
    return net, arch, module, to_onnx(module, net.deployed_input(arch, 1))


@pytest.fixture(scope="module", params=list(SPECS))
def model(request):
    return exported(request.param)


@pytest.fixture(scope="module")
def transformer():
    return exported("transformer")


def inputs(net, arch, n: int, seed: int) -> torch.Tensor:
    return net.deployed_input(arch, n, torch.Generator().manual_seed(seed))


def node(proto: onnx.ModelProto, name: str) -> onnx.NodeProto:
    return next(n for n in proto.graph.node if n.name == name)


def test_module_paths_of_torchscript_node_names():
    assert module_of("/blocks/blocks.0/expand/expand.0/Conv") == "blocks.0.expand.0"
    assert module_of("/layers.1/attn/q/MatMul") == "layers.1.attn.q"
    assert module_of("/layers.0/layers.0.2/layers.0.2.0/MatMul") == "layers.0.2.0"
    assert module_of("/GlobalAveragePool") == "" and module_of("Identity_3") is None


def test_nodes_of_finds_a_module_and_nothing_else():
    _, _, _, data = exported("mobilenet")
    proto = onnx.load_from_string(data)
    found = nodes_of(proto, "blocks.1")
    assert "/blocks/blocks.1/depthwise/depthwise.0/Conv" in found
    assert all(module_of(n) == "blocks.1" or module_of(n).startswith("blocks.1.") for n in found)
    assert nodes_of(proto, "classifier") == ["/classifier/Gemm"]
    with pytest.raises(HwnasError) as error:
        nodes_of(proto, "blocks.99")
    assert "blocks.99" in str(error.value) and "\n" not in str(error.value)


def test_int8_runs_close_to_fp32_with_qdq(model):
    net, arch, module, data = model
    q = quantize_int8(data, inputs(net, arch, 32, 1))
    x = inputs(net, arch, 8, 2)
    with torch.no_grad():
        expected = module(x).numpy()
    got = OnnxModule(q)(x).numpy()
    scale = float(np.abs(expected).max())
    # loose: a random transformer's logits head loses most (it may be kept fp32 by a policy)
    assert np.abs(got - expected).max() <= 0.3 * scale
    assert np.abs(got - expected).mean() <= 0.02 * scale
    report = qdq_report(q)
    assert report["saved"]["quantize"] > 0 and report["saved"]["dequantize"] > 0
    assert report["optimized"]["quantize"] <= report["saved"]["quantize"]
    assert report["integer_kernels"]  # ONNX Runtime fused some Q/DQ into integer kernels
    sizes = weight_bytes(q)
    assert sizes["int8"] > 0 and sizes["total"] < 0.5 * weight_bytes(data)["total"]


@pytest.mark.parametrize(
    "family,keep",
    [("mobilenet", ["blocks.1.depthwise", "classifier"]),
     ("transformer", ["blocks.0.attention.q", "head"])],
)  # fmt: skip
def test_int8_leaves_excluded_layers_fp32(family, keep):
    net, arch, _, data = exported(family)
    q = onnx.load_from_string(quantize_int8(data, inputs(net, arch, 8, 1), keep_fp32=keep))
    original = onnx.load_from_string(data)
    made = {out: n for n in q.graph.node for out in n.output}
    stored = {t.name: t for t in q.graph.initializer}
    kept = [n for path in keep for n in nodes_of(original, path)]
    compute = [n for n in kept if node(q, n).op_type in ("Conv", "Gemm", "MatMul")]
    assert compute
    for name in kept:
        for tensor in node(q, name).input:
            producer = made.get(tensor)
            assert producer is None or producer.op_type not in ("DequantizeLinear",), name
            if tensor in stored:
                assert stored[tensor].data_type == onnx.TensorProto.FLOAT, (name, tensor)
    quantized = [n for n in q.graph.node if n.op_type == "DequantizeLinear"]
    assert quantized  # the rest is quantized


def test_calibration_needs_samples(transformer):
    net, arch, _, data = transformer
    empty = inputs(net, arch, 1, 0)[:0]
    calls = (lambda: quantize_int8(data, empty), lambda: quantize_int8(data, []),
             lambda: quantize_int4(data, empty), lambda: quantize_int4(data, None))  # fmt: skip
    for call in calls:
        with pytest.raises(HwnasError) as error:
            call()
        assert "calibration" in str(error.value) and "\n" not in str(error.value)


def test_int4_uses_matmulnbits_and_shrinks_weights(transformer):
    net, arch, module, data = transformer
    proto = onnx.load_from_string(data)
    linear = [n for n in proto.graph.node if n.op_type == "MatMul" and "attention/MatMul" not in
              n.name]  # fmt: skip
    for awq in (False, True):
        q = quantize_int4(data, inputs(net, arch, 16, 1), awq=awq)
        ops = [n.op_type for n in onnx.load_from_string(q).graph.node]
        assert ops.count("MatMulNBits") == len(linear) - 0 and "MatMulNBits" in qdq_report(q)[
            "integer_kernels"]  # fmt: skip
        assert len(ops) == len(proto.graph.node)  # one node for one: the graph keeps its shape
        sizes, fp32 = weight_bytes(q), weight_bytes(data)
        assert sizes["int4"] > 0 and sizes["total"] < 0.7 * fp32["total"]
        x = inputs(net, arch, 4, 2)
        with torch.no_grad():
            expected = module(x).numpy()
        got = OnnxModule(q)(x).numpy()
        assert np.abs(got - expected).mean() <= 0.05 * np.abs(expected).max()


def test_matmulnbits_computes_with_the_dequantized_weights():
    """The packing written matches ONNX Runtime's reading: output = x @ dequantized(W)."""
    torch.manual_seed(0)
    layer = nn.Linear(40, 24, bias=False)  # K = 40: a partial last block
    x = torch.randn(3, 5, 40)
    data = to_onnx(layer, x)
    q = quantize_int4(data, awq=False, block_size=16)
    weight = layer.weight.detach().numpy().T
    expected = x.numpy() @ dequantized(weight, 16)
    assert np.abs(OnnxModule(q)(x).numpy() - expected).max() < 1e-4
    assert np.abs(expected - x.numpy() @ weight).max() > 1e-3  # it did quantize


class NormLinear(nn.Module):
    """A norm whose gain makes a few channels of the linear layer's input 30x the others,
    as the outlier channels of large transformers' activations are."""

    def __init__(self, width: int = 64, out: int = 48) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.linear = nn.Linear(width, out, bias=False)
        with torch.no_grad():
            gain = torch.ones(width)
            gain[[3, 17, 40]] = 30.0
            self.norm.weight.copy_(gain)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.norm(x))


def test_awq_beats_round_to_nearest_on_outlier_channels():
    torch.manual_seed(0)
    module = NormLinear().eval()
    calibration, x = torch.randn(16, 8, 64), torch.randn(8, 8, 64)
    data = to_onnx(module, x[:1])
    with torch.no_grad():
        expected = module(x).numpy()
    errors = {}
    for awq in (False, True):
        got = OnnxModule(quantize_int4(data, calibration, awq=awq))(x).numpy()
        errors[awq] = float(np.mean((got - expected) ** 2))
    assert errors[True] < 0.7 * errors[False], errors
    _, report = awq_scale(data, calibration)
    assert report[0].alpha > 0 and report[0].folded_into.startswith("LayerNormalization")


@pytest.mark.parametrize("ffn", ["mlp", "glu"])
def test_awq_folding_keeps_the_function(ffn):
    changes = {"l0.ffn": ffn, "l1.ffn": ffn}
    net, arch, _, data = exported("transformer", changes)
    scaled, report = awq_scale(data, inputs(net, arch, 16, 1))
    folded = [r for r in report if r.folded_into]
    assert any(r.folded_into.startswith("LayerNormalization") for r in folded)
    if ffn == "glu":  # down reads silu(gate) * up: its scale goes into up's columns
        assert any("ffn/up" in (r.folded_into or "") for r in report if "down" in r.nodes[0])
    x = inputs(net, arch, 4, 2).numpy()
    expected = run(data, [x])
    assert np.abs(run(scaled, [x]) - expected).max() <= 1e-5 * max(1.0, np.abs(expected).max())
    changed = {t.name for t in onnx.load_from_string(scaled).graph.initializer}
    assert any(name.endswith("_awq") for name in changed)


def test_awq_inserts_a_mul_where_asked_and_keeps_the_function():
    net, arch, _, data = exported("transformer")
    scaled, report = awq_scale(data, inputs(net, arch, 16, 1), unfoldable="mul")
    inserted = [r for r in report if r.folded_into == "Mul inserted"]
    skipped = [r for r in awq_scale(data, inputs(net, arch, 16, 1))[1] if r.skipped == "no fold"]
    assert len(inserted) == len(skipped)
    x = inputs(net, arch, 4, 2).numpy()
    expected = run(data, [x])
    assert np.abs(run(scaled, [x]) - expected).max() <= 1e-5 * max(1.0, np.abs(expected).max())


def test_onnx_module_serves_a_task_quality_unchanged():
    task = random_text_task(context=16)
    net, arch, module, data = exported("transformer")
    expected = task.quality(module, "val")
    got = task.quality(OnnxModule(data), "val")  # a fixed-batch-1 model fed 8 windows
    assert got["bits_per_byte"] == pytest.approx(expected["bits_per_byte"], abs=1e-4)
    int8 = task.quality(OnnxModule(quantize_int8(data, task.calibration_inputs(16, 0))), "val")
    assert abs(int8["bits_per_byte"] - expected["bits_per_byte"]) < 0.5


def test_bad_int4_settings_are_one_line_errors(transformer):
    _, _, _, data = transformer
    for kwargs in ({"block_size": 24}, {"alphas": [2.0]}, {"unfoldable": "drop"}):
        with pytest.raises(HwnasError) as error:
            quantize_int4(data, awq=False, **kwargs)
        assert "\n" not in str(error.value)
    with pytest.raises(HwnasError):
        quantize_int8(data, np.zeros((1, 16), np.int64), method="kl")
