"""The family contract, held over every registered family and every task it serves."""

import functools
import json

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from helpers import FAST_LATENCY, image_spec, random_image_task, random_text_task, token_spec
from hwnas.config import TrainConfig
from hwnas.errors import HwnasError
from hwnas.export import export_subnet
from hwnas.families import FAMILIES, build_family, load_checkpoint, save_checkpoint
from hwnas.families.base import Family
from hwnas.families.memory import live_bytes
from hwnas.hardware.profile import build_profile, check_fits, check_profile, load_profile
from hwnas.train import SandwichTrainer, resolve_settings

torch.set_num_threads(1)

SPECS = {"image": image_spec(1, 3, size=16), "tokens": token_spec(16)}
CASES = [(f, s) for f in FAMILIES for s in SPECS]


def build(family: str, spec: str, seed: int = 0) -> Family | None:
    """The family's small instance for ``spec``, or None when it refuses the task."""
    torch.manual_seed(seed)
    try:
        return build_family(family, FAMILIES[family].small_overrides, SPECS[spec])
    except HwnasError as exc:
        assert "cannot serve" in str(exc) and "\n" not in str(exc)
        return None


@pytest.fixture(scope="module", params=CASES, ids=[f"{f}-{s}" for f, s in CASES])
def model(request) -> Family:
    net = build(*request.param)
    if net is None:
        pytest.skip(f"{request.param[0]} does not serve {request.param[1]} tasks")
    return perturbed(net).eval()


def perturbed(net: Family) -> Family:
    """Norm gains, biases and statistics moved off their initial values, so a comparison of
    outputs cannot pass on a degenerate network."""
    rng = np.random.default_rng(0)
    net.train()
    with torch.no_grad():
        for arch in [net.teacher_arch(), *(net.space().sample(rng) for _ in range(3))]:
            net.set_active(arch)
            net(net.example_input(4))
        for name, p in net.named_parameters():
            if p.ndim == 1 or "transforms" in name:
                p.add_(0.1 * torch.randn_like(p))
    net.set_active(net.teacher_arch())
    return net


def archs_of(net: Family, n: int = 8, seed: int = 1) -> list:
    rng = np.random.default_rng(seed)
    archs = [net.teacher_arch(), net.smallest_arch(), *(net.space().sample(rng) for _ in range(n))]
    return list({a.key: a for a in archs}.values())


def test_every_family_serves_some_task_and_refuses_others_in_one_line():
    for family in FAMILIES:
        built = [spec for spec in SPECS if build(family, spec) is not None]
        assert built, f"{family} serves none of {list(SPECS)}"


def test_contract_basics(model):
    space = model.space()
    assert isinstance(model, Family) and space.size() > 10
    teacher, smallest = model.teacher_arch(), model.smallest_arch()
    assert teacher != smallest and model.canonical(teacher.to_dict()) == teacher
    spec = model.input_spec()
    x = model.example_input(3)
    assert tuple(x.shape) == (3, *spec.shape) and x.dtype == spec.dtype
    phases = model.phases()
    assert phases[-1].opens == frozenset(space.names)
    assert all(p.opens <= set(space.names) for p in phases)
    again = type(model).from_config(json.loads(json.dumps(model.config.to_dict())))
    assert again.space().describe() == space.describe()
    assert {k: v.shape for k, v in again.state_dict().items()} == {
        k: v.shape for k, v in model.state_dict().items()
    }
    with pytest.raises(HwnasError):
        model.set_active({**teacher.to_dict(), space.names[0]: "no such option"})


def test_labels_are_short_and_tell_archs_apart(model):
    archs = archs_of(model, n=20)
    labels = [model.label(a) for a in archs]
    assert all(0 < len(label) <= 60 for label in labels), labels
    assert model.label(model.teacher_arch()) != model.label(model.smallest_arch())
    assert len(set(labels)) >= len(archs) // 2


def test_extracted_subnets_match_the_supernet(model):
    x = model.example_input(3, torch.Generator().manual_seed(0))
    worst = 0.0
    for arch in archs_of(model):
        previous = model.active
        sub = model.extract(arch)
        assert model.active == previous and not sub.training  # extract leaves the super-net
        with torch.no_grad():
            model.set_active(arch)
            expected, got = model(x), sub(x)
        assert expected.abs().max() > 1e-2  # not a degenerate comparison
        worst = max(worst, (expected - got).abs().max().item())
    model.set_active(model.teacher_arch())
    assert worst <= 1e-5


def test_analytic_cost_equals_the_counters_on_the_extracted_module(model):
    for arch in archs_of(model, 5):
        sub = model.extract(arch)
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            sub(model.example_input(1))
        macs, params = counter.get_total_flops() // 2, sum(p.numel() for p in sub.parameters())
        predicted = model.cost(arch)
        assert abs(predicted.macs - macs) <= 0.01 * macs, arch.key
        assert abs(predicted.params - params) <= 0.01 * params, arch.key
        sizes = model.weight_bytes(arch)
        assert sizes["fp32"] == 4 * predicted.params and sizes["int8"] < sizes["fp32"] / 2
    assert model.cost(model.teacher_arch()).macs > model.cost(model.smallest_arch()).macs


def test_op_schedule_starts_at_the_input_and_ends_at_the_outputs(model):
    x = model.example_input(1)
    for arch in archs_of(model, 4):
        schedule = model.op_schedule(arch)
        live = live_bytes(schedule)  # well formed: every read follows its write
        with torch.no_grad():
            out = model.extract(arch)(x)
        assert schedule[0].inputs == () and schedule[0].elements == x.numel()
        assert schedule[-1].elements == out.numel()
        assert max(live.values()) >= 4 * max(op.elements for op in schedule)


def test_layers_compose_to_the_extracted_subnetwork_and_the_catalogue_covers_them(model):
    catalogue = {layer.key: layer for layer in model.layer_catalogue()}
    x = model.example_input(2, torch.Generator().manual_seed(0))
    for arch in archs_of(model, 5):
        schedule = model.layer_schedule(arch)
        assert {layer.key for layer in schedule} <= set(catalogue)
        y = x
        with torch.no_grad():
            for layer, own in zip(schedule, model.layer_modules(arch), strict=True):
                assert tuple(y.shape[1:]) == layer.input_shape, layer.key
                table_entry = model.layer_module(catalogue[layer.key]).eval()(y)
                y = own.eval()(y)
                assert table_entry.shape == y.shape, layer.key  # same layer, other weights
            torch.testing.assert_close(y, model.extract(arch).eval()(x), atol=1e-5, rtol=1e-4)
    assert model.active == model.teacher_arch()  # building layer modules left it alone


def test_onnx_export_matches_pytorch(model, tmp_path):
    for i, arch in enumerate(archs_of(model, 2)):
        example = functools.partial(model.deployed_input, arch)
        record = export_subnet(model.extract(arch), example, tmp_path / f"{i}.onnx",
                               {"key": arch.key}, FAST_LATENCY)  # fmt: skip
        assert record["max_abs_diff"] <= 1e-4  # batches 1 and 3: the batch axis is dynamic
        assert record["input"]["shape"] == ["batch", *model.deployed_shape(arch)]
        assert json.loads((tmp_path / f"{i}.json").read_text())["key"] == arch.key


@pytest.mark.parametrize("measured", [False, True], ids=["weights", "activations"])
def test_sorting_by_importance_keeps_the_function(model, measured):
    """By weight norms (progressive shrinking) or by activations on calibration inputs
    (InstaTune): the largest network computes the same, and every sub-network of the sorted
    super-network is still what ``extract`` gives."""
    sorted_model = type(model).from_config(model.config.to_dict())
    sorted_model.load_state_dict(model.state_dict())
    calibration = model.example_input(8, torch.Generator().manual_seed(3))
    sorted_model.eval().sort_by_importance(calibration if measured else None)
    x = model.example_input(2)
    teacher = model.teacher_arch()
    with torch.no_grad():
        for net in (model, sorted_model):
            net.set_active(teacher)
        torch.testing.assert_close(model(x), sorted_model(x), atol=1e-5, rtol=1e-4)
        assert sorted_model.active == teacher
        for arch in (sorted_model.space().sample(np.random.default_rng(i)) for i in range(3)):
            sorted_model.set_active(arch)
            torch.testing.assert_close(sorted_model(x), sorted_model.extract(arch)(x),
                                       atol=1e-5, rtol=1e-4)  # fmt: skip


def test_checkpoint_round_trip(model, tmp_path):
    """Loaded without an optimizer, the tensors read become the weights (no second copy),
    still trainable parameters; with one, the parameters it holds are the ones filled."""
    path = save_checkpoint(tmp_path / "c.safetensors", model, {"epoch": 1})
    other = type(model).from_config(model.config.to_dict())
    assert load_checkpoint(path, other) == {"epoch": 1}
    assert all(torch.equal(v, other.state_dict()[k]) for k, v in model.state_dict().items())
    assert all(isinstance(p, torch.nn.Parameter) and p.requires_grad
               for p in other.parameters())  # fmt: skip
    trained = type(model).from_config(model.config.to_dict())
    optimizer = torch.optim.SGD(trained.parameters(), lr=0.1)
    save_checkpoint(path, model, {"epoch": 1}, optimizer)
    held = [id(p) for p in trained.parameters()]
    load_checkpoint(path, trained, optimizer)
    assert (
        [id(p) for p in trained.parameters()]
        == held
        == [id(p) for group in optimizer.param_groups for p in group["params"]]
    )
    assert all(torch.equal(v, trained.state_dict()[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_family_computes_on_the_device_of_its_weights(family):
    """On the meta device (no data, but a tensor made on the CPU inside forward is an
    error), so a forward or backward pass that would fail on a GPU fails here."""
    spec = next(s for s in SPECS if build(family, s) is not None)
    for arch in archs_of(build(family, spec), n=6):
        net = build(family, spec)
        net.set_active(arch)
        net.to("meta")
        outputs = net(SPECS[spec].input.example(2).to("meta"))
        outputs.float().sum().backward()
        assert outputs.device.type == "meta"
        assert any(p.grad is not None and p.grad.device.type == "meta" for p in net.parameters())


@pytest.mark.parametrize(("family", "spec"), CASES)
def test_sandwich_training_is_deterministic_and_learns(family, spec):
    states, losses = [], []
    for _ in range(2):
        net = build(family, spec)
        if net is None:
            pytest.skip(f"{family} does not serve {spec} tasks")
        task = random_image_task(n=40) if spec == "image" else random_text_task()
        settings = resolve_settings(TrainConfig(epochs=3, batch_size=8, random_subnets=1),
                                    type(net), type(task))  # fmt: skip
        history = SandwichTrainer(net, task, settings, seed=0).fit()
        states.append(net.state_dict())
        losses.append([h["loss"] for h in history])
    assert losses[0] == losses[1] and losses[0][-1] < losses[0][0]
    for name, tensor in states[0].items():
        assert torch.equal(tensor, states[1][name]), name


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_family_is_profiled_and_checked_through_its_contract(family, tmp_path):
    """A device profile needs nothing but the family contract (its layer catalogue,
    schedules and modules): one is made, saved, fitted to the network and checked for every
    registered family, with no family named in the hardware code."""
    spec = next(s for s in SPECS if build(family, s) is not None)
    net = build(family, spec).eval()
    profile = build_profile(family, net, FAST_LATENCY, samples=10, rounds=1)
    path = tmp_path / "profile.json"
    profile.save(path)
    loaded = load_profile(path)
    check_fits(loaded, path, family, build(family, spec))
    assert set(loaded.table.entries) == {layer.key for layer in net.layer_catalogue()}
    assert loaded.reference.arch == net.teacher_arch().key
    checked = check_profile(loaded, net, samples=10, rounds=1)
    assert checked["samples"] == 10 and checked["same_device"] is True
    assert all(a["measured_ms"] > 0 and a["predicted_ms"] > 0 for a in checked["archs"])
