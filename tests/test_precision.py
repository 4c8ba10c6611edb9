"""Precision policies composed into every family's space, and the quantized models they make."""

import numpy as np
import onnx
import pytest
import torch

from helpers import FAST_LATENCY, image_spec, token_spec
from hwnas.errors import HwnasError
from hwnas.evaluate.quality import recalibrate_batchnorm
from hwnas.hardware.measure import to_onnx
from hwnas.precision import PREFIX, DeployedModel, PrecisionPolicy, policy_of, strip_policy
from hwnas.quantize.graph import module_of, nodes_of
from test_families import CASES, build, perturbed

torch.set_num_threads(1)
QUANTIZABLE = [(f, s) for f, s in CASES if build(f, s) and build(f, s).quantizable_layers()]


@pytest.fixture(scope="module", params=QUANTIZABLE, ids=[f"{f}-{s}" for f, s in QUANTIZABLE])
def net(request):
    torch.manual_seed(0)
    return perturbed(build(*request.param)).eval()


def precisions_of(net) -> list[str]:
    linear = any(layer.linear for layer in net.quantizable_layers())
    return ["fp32", "int8", "int4"] if linear else ["fp32", "int8"]


def policy_for(net, precisions=None) -> PrecisionPolicy:
    calibration = net.example_input(16, torch.Generator().manual_seed(1))
    return PrecisionPolicy(net, precisions or precisions_of(net), calibration)


def with_policy(policy, arch, precision):
    values = {
        **arch.to_dict(),
        **{n: precision for n in policy.space.names if n.startswith(PREFIX)},
    }
    return policy.space.make(values)


def test_the_policy_space_adds_one_choice_per_layer_and_families_ignore_it(net):
    policy = policy_for(net)
    base = net.space()
    assert policy.space.names[: len(base.names)] == base.names
    added = [n for n in policy.space.names if n.startswith(PREFIX)]
    assert added == [PREFIX + layer.name for layer in net.quantizable_layers()]
    rng = np.random.default_rng(0)
    for _ in range(6):
        arch = policy.space.sample(rng)
        plain = base.make(strip_policy(arch.to_dict()))
        assert net.cost(arch) == net.cost(plain) and net.label(arch) == net.label(plain)
        active = net.quantizable_modules(arch)
        assert set(policy.policy(arch)) == set(active)  # exactly the layers the arch runs
        assert set(policy_of(arch.to_dict())) == set(active)
        model = onnx.load_from_string(to_onnx(net.extract(arch), net.example_input(1)))
        for paths in active.values():
            for path in paths:
                assert nodes_of(model, path)  # every layer's modules are in the graph


def test_quantized_layers_get_integer_nodes_and_fp32_ones_stay_float(net):
    policy = policy_for(net, ["fp32", "int8"])
    arch = net.teacher_arch()
    fp32 = with_policy(policy, arch, "fp32")
    module = net.extract(fp32)
    recalibrate_batchnorm(module, policy.calibration)
    x = net.example_input(3, torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = module(x)
    assert (policy.evaluated(fp32)(x) - expected).abs().max() <= 1e-4  # all fp32: unchanged
    names = [n for n in policy.space.names if n.startswith(PREFIX)]
    mixed = policy.space.make({**fp32.to_dict(), names[0]: "int8"})
    graph = onnx.load_from_string(policy.evaluated(mixed).model).graph
    quantized = {module_of(n.name) for n in graph.node if n.op_type == "DequantizeLinear"}
    first = net.quantizable_modules(mixed)[names[0][len(PREFIX) :]]
    assert any(q and q.startswith(p) for q in quantized for p in first)
    others = [p for n, ps in net.quantizable_modules(mixed).items() for p in ps
              if PREFIX + n != names[0]]  # fmt: skip
    assert not any(q and q.startswith(p + ".") or q == p for q in quantized for p in others)


def test_int4_goes_to_linear_layers_only_and_shrinks_the_model(net):
    policy = policy_for(net)
    if "int4" not in policy.precisions:
        with pytest.raises(HwnasError, match="linear layers"):
            policy_for(net, ["fp32", "int4"])
        return
    arch = net.teacher_arch()
    small = policy.evaluated(with_policy(policy, arch, "int4")).model
    large = policy.evaluated(with_policy(policy, arch, "fp32")).model
    ops = {n.op_type for n in onnx.load_from_string(small).graph.node}
    assert "MatMulNBits" in ops and len(small) < len(large)


def test_the_deployed_model_computes_what_was_evaluated(net):
    policy = policy_for(net, ["fp32", "int8"])
    arch = with_policy(policy, net.smallest_arch(), "int8")
    module = net.extract(arch)
    recalibrate_batchnorm(module, policy.calibration)
    deployed = DeployedModel(policy.deployed(module, arch), net, arch)
    x = net.example_input(4, torch.Generator().manual_seed(3))
    evaluated = policy.evaluated(arch)(x)
    scale = evaluated.abs().max()
    assert (deployed(x) - evaluated).abs().max() <= 1e-3 * max(float(scale), 1.0)


def test_bad_policies_are_one_line_errors(net):
    with pytest.raises(HwnasError, match="int3"):
        policy_for(net, ["fp32", "int3"])
    with pytest.raises(HwnasError, match="no calibration"):
        PrecisionPolicy(net, ["fp32", "int8"], net.example_input(1)[:0])
    calibration = net.example_input(4)
    with pytest.raises(HwnasError, match="no layer 'nope'"):
        PrecisionPolicy(net, ["fp32", "int8"], calibration, fixed={"nope": "fp32"})
    first = net.quantizable_layers()[0]
    if not first.linear:
        with pytest.raises(HwnasError, match=f"fixed.{first.name}: int4"):
            PrecisionPolicy(net, ["fp32", "int8"], calibration, fixed={first.name: "int4"})
    pinned = PrecisionPolicy(net, ["fp32", "int8"], calibration, fixed={first.name: "fp32"})
    assert PREFIX + first.name not in pinned.space.names
    assert pinned.policy(pinned.space.sample(np.random.default_rng(0)))[first.name] == "fp32"


@pytest.mark.parametrize("latency", ["measured", "profile"])
def test_a_run_searches_precision_and_exports_the_quantized_models(tmp_path, latency, request):
    """Measured: every sub-network's quantized model is timed; on a profile made for the
    precision search, its layers at each precision predict the quantized model's latency."""
    from hwnas.config import validated
    from hwnas.export import read_metadata
    from hwnas.run import run_job

    raw = {
        "supernet": {"overrides": PROFILED["mobilenet"][0]},
        "train": {"epochs": 1, "batch_size": 128},
        "search": {"budget": 4, "calibration_images": 32,
                   "objectives": ["accuracy:max", "model_bytes:min"]},
        "latency": FAST_LATENCY.model_dump(),
        "quantize": {"precisions": ["int8"], "calibration": 16, "fixed": {"stem": "fp32"}},
    }  # fmt: skip
    if latency == "profile":
        device = request.getfixturevalue("mobilenet_profile")[2]
        raw["latency"] = {"source": f"profile:{device}"}
    summary = run_job(validated(raw), tmp_path / "q")
    assert {"model_bytes", "weight_bytes"} <= set(summary["metrics"])
    for info in summary["exported"].values():
        assert info["validation_gap"]["accuracy"] <= 0.5  # what was searched is what ships
        meta = read_metadata(tmp_path / "q" / info["onnx"])
        assert meta["precision"]["stem"] == "fp32"
        assert {p for n, p in meta["precision"].items() if n != "stem"} == {"int8"}
        graph = onnx.load(str(tmp_path / "q" / info["onnx"])).graph
        assert any(n.op_type == "QuantizeLinear" for n in graph.node)
        assert info["input"]["shape"][0] == "batch"
        if latency == "profile":  # the exported quantized model, timed here next to it
            assert info["measured_latency_ms_here"] > 0 and info["profile_latency_ms"] > 0
    front = summary["front"][0]
    # int8 weights (a file this small is mostly the graph's names, model_bytes says so too)
    assert front["metrics"]["weight_bytes"] < 0.5 * front["metrics"]["size_bytes"]
    if latency == "profile":
        assert summary["latency"]["source"] == f"profile:{device}"
        assert "latency_table_ms" in front["metrics"]


def test_quantized_models_run_on_onnx_runtime_only():
    from hwnas.config import validated

    with pytest.raises(HwnasError, match="quantize.precisions: quantized models run on ONNX"):
        validated({"quantize": {"precisions": ["fp32", "int8"]}, "latency": {"backend": "torch"}})


def test_each_quantizable_layer_is_one_scheduled_layer_in_order(net):
    policy = policy_for(net)
    for arch in [net.smallest_arch(), net.teacher_arch(),
                 *(policy.space.sample(np.random.default_rng(i)) for i in range(5))]:  # fmt: skip
        schedule = net.layer_schedule(arch)
        assert [layer.part for layer in schedule if layer.part] == list(
            net.quantizable_modules(arch)
        )
        chosen = policy.policy(arch)
        quantized = policy.schedule(arch)
        assert [layer.precision for layer in quantized if layer.part] == list(chosen.values())
        assert all(layer.precision == "fp32" for layer in quantized if not layer.part)
        assert [layer.key.partition(":")[0] for layer in quantized] == [
            layer.key for layer in schedule
        ]
        assert {layer.key for layer in quantized} <= {layer.key for layer in policy.catalogue()}


PROFILED = {  # the MobileNet's is the default task's (digits, 1x32x32) for a whole run
    "mobilenet": ({"widths": [8, 12, 16, 16], "expands": [1, 2], "depths": [1, 2],
                   "kernels": [3], "resolutions": [16], "final_width": 32},
                  image_spec(1, 10, size=32)),
    "transformer": ({"widths": (16,), "depths": (1, 2), "heads": (2,), "head_dim": 8,
                     "mlp_ratios": (1, 2), "attentions": ("softmax", "linear"),
                     "feed_forwards": ("mlp",), "linear_chunk": 4, "max_context": 64},
                    token_spec(16)),
}  # fmt: skip


def _precision_profile(family: str, folder):
    from hwnas.families import build_family
    from hwnas.hardware.profile import ProfilePrecision, build_profile

    overrides, spec = PROFILED[family]
    torch.manual_seed(0)
    model = build_family(family, overrides, spec).eval()
    kinds = ("fp32", "int8", "int4") if family == "transformer" else ("fp32", "int8")
    profile = build_profile(family, model, FAST_LATENCY, samples=10, rounds=1,
                            precision=ProfilePrecision(kinds, 32))  # fmt: skip
    path = folder / f"{family}.json"
    profile.save(path)
    return family, model, path


@pytest.fixture(scope="module")
def mobilenet_profile(tmp_path_factory):
    return _precision_profile("mobilenet", tmp_path_factory.mktemp("profile"))


@pytest.fixture(scope="module")
def transformer_profile(tmp_path_factory):
    return _precision_profile("transformer", tmp_path_factory.mktemp("profile"))


@pytest.fixture(params=list(PROFILED))
def precision_profile(request):
    return request.getfixturevalue(f"{request.param}_profile")


def test_a_precision_profile_times_every_layer_at_every_precision(precision_profile):
    from hwnas.hardware.profile import check_fits, check_profile, load_profile

    family, model, path = precision_profile
    profile = load_profile(path)
    policy = profile.policy(model)
    assert profile.precision.precisions == policy.precisions
    assert set(profile.table.entries) == {layer.key for layer in policy.catalogue()}
    assert any(key.endswith(":int8") for key in profile.table.entries)
    assert (family == "transformer") == any(k.endswith(":int4") for k in profile.table.entries)
    check_fits(profile, path, family, model, policy)
    check_fits(profile, path, family, model)  # an fp32 search may use it too
    arch = model.teacher_arch()
    corners = [policy.uniform(arch, p) for p in policy.precisions]
    table_ms, predicted = profile.estimate(model, corners, policy)
    assert len(set(table_ms)) == len(corners)  # each precision's own layers are summed
    assert np.all(np.isfinite(predicted) & (predicted > 0))
    fp32_only = profile.estimate(model, [arch])  # no policy: the fp32 model
    np.testing.assert_allclose(fp32_only[0], table_ms[:1])
    check = check_profile(profile, model, samples=10, rounds=1)
    assert check["samples"] == 10 and check["same_device"] is True
    assert 0 <= check["predictor"]["within_10pct"] <= 1
    assert any(PREFIX in key for key in (a["key"] for a in check["archs"]))


def test_a_profile_without_the_searched_precisions_is_refused(precision_profile):
    import dataclasses

    from hwnas.hardware.profile import check_fits, load_profile

    family, model, path = precision_profile
    profile = load_profile(path)
    policy = profile.policy(model)
    with pytest.raises(HwnasError, match="holds fp32 layers, this run searches int8"):
        check_fits(dataclasses.replace(profile, precision=None), path, family, model, policy)
    entries = {k: v for k, v in profile.table.entries.items() if not k.endswith(":int8")}
    table = dataclasses.replace(profile.table, entries=entries)
    with pytest.raises(HwnasError, match="no entry for layer .*:int8"):
        check_fits(dataclasses.replace(profile, table=table), path, family, model, policy)
    if family == "transformer":
        other = PrecisionPolicy(model, policy.precisions, policy.calibration, block_size=64)
        with pytest.raises(HwnasError, match="blocks of 32, this run quantizes in blocks of 64"):
            check_fits(profile, path, family, model, other)
