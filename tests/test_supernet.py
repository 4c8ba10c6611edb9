import dataclasses
import json

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from helpers import ODD_CONFIG, image_spec
from hwnas.errors import HwnasError
from hwnas.families import build_family, load_checkpoint, optimizer_path, save_checkpoint
from hwnas.families.mobilenet import ElasticMobileNet, MobileNetConfig, SubNet, resize
from hwnas.families.mobilenet.cost import cost
from hwnas.families.mobilenet.elastic import ElasticDepthwiseConv
from hwnas.families.mobilenet.static import MBConv, SqueezeExcite

torch.set_num_threads(1)

PLAIN_MODULES = {
    SubNet,
    MBConv,
    SqueezeExcite,
    nn.Sequential,
    nn.Conv2d,
    nn.BatchNorm2d,
    nn.Linear,
    nn.ReLU,
    nn.Hardswish,
}


def trained_like(seed: int = 0, config: MobileNetConfig | None = None) -> ElasticMobileNet:
    """A super-network whose BN stats, affine params and kernel transforms are non-trivial."""
    torch.manual_seed(seed)
    model = ElasticMobileNet(config)
    rng = np.random.default_rng(seed)
    model.train()
    with torch.no_grad():
        for arch in [model.teacher_arch(), *(model.space().sample(rng) for _ in range(3))]:
            model.set_active(arch)
            model(resize(torch.randn(8, 3, 32, 32), int(arch["resolution"])))
        for name, p in model.named_parameters():
            if "transforms" in name:
                p.add_(0.2 * torch.randn_like(p))
            elif name.endswith("_bn.weight") or name.endswith("_bn.bias"):
                p.add_(0.1 * torch.randn_like(p))
    model.set_active(model.teacher_arch())
    return model.eval()


@pytest.fixture(scope="module")
def model() -> ElasticMobileNet:
    return trained_like()


def test_default_space_is_large_and_named_as_documented(model):
    space = model.space()
    assert space.size() > 10**6
    assert space.names[:2] == ("resolution", "s0.depth")
    assert {"s3.b3.kernel", "s3.b3.expand"} <= set(space.names)
    by_name = {c.name: c for c in space.choices}
    assert by_name["s1.b0.kernel"].condition is None  # below the minimum depth
    cond = by_name["s1.b2.expand"].condition
    assert cond.parent == "s1.depth" and cond.values == {3, 4}
    assert by_name["s1.b1.expand"].condition.values == {2, 3, 4}
    assert all(c.ordinal for c in space.choices)


def test_shallow_stage_ignores_choices_of_skipped_blocks(model):
    base = model.teacher_arch().to_dict()
    a = model.space().make({**base, "s2.depth": 2, "s2.b2.kernel": 3, "s2.b3.expand": 3})
    b = model.space().make({**base, "s2.depth": 2, "s2.b2.kernel": 7, "s2.b3.expand": 4})
    assert a.key == b.key and a["s2.b2.kernel"] is None and a["s2.b3.expand"] is None
    c = model.space().make({**base, "s2.depth": 3, "s2.b2.kernel": 3})
    assert c.key != a.key
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        model.set_active(a)
        ya = model(x)
        model.set_active(b)
        yb = model(x)
        model.set_active(c)
        yc = model(x)
    assert torch.equal(ya, yb) and not torch.allclose(ya, yc)
    model.set_active(model.teacher_arch())


def test_set_active_rejects_foreign_or_invalid_archs(model):
    with pytest.raises(HwnasError, match="kernel"):
        model.set_active({**model.teacher_arch().to_dict(), "s0.b0.kernel": 4})
    config = MobileNetConfig(
        widths=(8, 16), strides=(1, 2), se_stages=(False, True), hswish_stages=(False, True)
    )
    foreign = ElasticMobileNet(config).teacher_arch()
    with pytest.raises(HwnasError, match="does not belong"):
        model.set_active(foreign)
    assert model.active == model.teacher_arch()


def test_kernel_transform_is_identity_at_init_and_applied_in_order():
    torch.manual_seed(0)
    conv = ElasticDepthwiseConv(6, (3, 5, 7), stride=1)
    w = conv.weight.detach()
    assert torch.equal(conv.active_weight(6, 7), w)
    assert torch.equal(conv.active_weight(4, 3), w[:4, :, 2:5, 2:5])
    with torch.no_grad():
        for p in conv.transforms.values():
            p.add_(0.3 * torch.randn_like(p))
    m75, m53 = conv.transforms["7to5"].detach(), conv.transforms["5to3"].detach()
    k5 = (w[:4, :, 1:6, 1:6].reshape(4, 25) @ m75.T).reshape(4, 1, 5, 5)
    k3 = (k5[:, :, 1:4, 1:4].reshape(4, 9) @ m53.T).reshape(4, 1, 3, 3)
    torch.testing.assert_close(conv.active_weight(4, 5), k5)
    torch.testing.assert_close(conv.active_weight(4, 3), k3)
    assert not torch.allclose(k3, w[:4, :, 2:5, 2:5])


def test_extracted_subnets_match_the_supernet(model):
    rng = np.random.default_rng(1)
    archs = [model.teacher_arch(), model.smallest_arch()]
    archs += [model.space().sample(rng) for _ in range(20)]
    assert len({a.key for a in archs}) == len(archs)
    assert len({a["resolution"] for a in archs}) == len(model.config.resolutions)
    x = torch.randn(4, 3, 32, 32)
    worst = 0.0
    for arch in archs:
        previous = model.active
        sub = model.extract(arch)
        assert model.active == previous  # extract restores the active arch
        assert not sub.training
        assert {type(m) for m in sub.modules()} <= PLAIN_MODULES
        with torch.no_grad():
            model.set_active(arch)
            expected = model(resize(x, int(arch["resolution"])))
            got = sub(x)
        worst = max(worst, (expected - got).abs().max().item())
        assert expected.abs().max() > 1e-2  # not a degenerate all-zero comparison
    model.set_active(model.teacher_arch())
    assert worst <= 1e-5


def test_train_forward_updates_only_active_bn_channels():
    model = ElasticMobileNet()
    arch = model.space().make({**model.smallest_arch().to_dict(), "resolution": 32})
    model.set_active(arch)
    bn = model.stages[0][0].expand_bn
    before = [bn.running_mean.clone(), bn.running_var.clone()]
    model.train()(torch.randn(4, 3, 32, 32))
    active = 16 * 3
    for old, new in zip(before, (bn.running_mean, bn.running_var), strict=True):
        assert not torch.equal(new[:active], old[:active])
        assert torch.equal(new[active:], old[active:])
    assert int(bn.num_batches_tracked) == 1


def test_sort_by_importance_keeps_function_and_orders_by_importance():
    model = trained_like(seed=2)
    x = torch.randn(4, 3, 32, 32)
    blocks = [b for stage in model.stages for b in stage]
    assert not all(bool((b.importance().diff() <= 0).all()) for b in blocks)
    with torch.no_grad():
        before = model(x)
    narrow = model.space().make({**model.teacher_arch().to_dict(), "s3.b0.expand": 3})
    model.set_active(narrow)
    with torch.no_grad():
        narrow_before = model(x)
    weight = blocks[0].expand.weight
    model.sort_by_importance()
    assert blocks[0].expand.weight is weight  # in place: optimizer references stay valid
    for b in blocks:
        assert (b.importance().diff() <= 0).all()
    with torch.no_grad():
        model.set_active(model.teacher_arch())
        after = model(x)
        model.set_active(narrow)
        narrow_after = model(x)
    assert (before - after).abs().max().item() <= 1e-5
    assert not torch.allclose(narrow_before, narrow_after)  # a narrower block now differs


def count(sub: nn.Module, resolution: int) -> tuple[int, int]:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        sub(torch.randn(1, 3, resolution, resolution))
    return counter.get_total_flops() // 2, sum(p.numel() for p in sub.parameters())


@pytest.mark.parametrize(
    "config",
    [
        MobileNetConfig(),
        dataclasses.replace(ODD_CONFIG, num_classes=7),
    ],
)
def test_analytic_macs_and_params_match_torch_counters(config):
    torch.manual_seed(0)
    model = ElasticMobileNet(config).eval()
    rng = np.random.default_rng(3)
    archs = [model.teacher_arch(), model.smallest_arch()]
    archs += [model.space().sample(rng) for _ in range(4)]
    for arch in archs:
        predicted = cost(arch, config)
        macs, params = count(model.extract(arch), int(arch["resolution"]))
        assert abs(predicted.macs - macs) <= 0.01 * macs
        assert abs(predicted.params - params) <= 0.01 * params
    assert cost(archs[0], config).macs > cost(archs[1], config).macs


def test_checkpoint_round_trip_with_optimizer(tmp_path):
    source = trained_like(seed=3)
    optimizer = torch.optim.SGD(source.parameters(), lr=0.1, momentum=0.9)
    source.train()
    source(torch.randn(2, 3, 32, 32)).sum().backward()
    optimizer.step()
    path = save_checkpoint(tmp_path / "ckpt.safetensors", source, {"epoch": 3}, optimizer)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "ckpt.safetensors",
        "ckpt.safetensors.optim",
    ]
    torch.manual_seed(99)
    target = ElasticMobileNet()
    target_opt = torch.optim.SGD(target.parameters(), lr=0.1, momentum=0.9)
    assert load_checkpoint(path, target, target_opt) == {"epoch": 3}
    a, b = source.state_dict(), target.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert target_opt.state_dict()["state"][0]["momentum_buffer"].abs().sum() > 0
    torch.testing.assert_close(
        target_opt.state_dict()["state"][0]["momentum_buffer"],
        optimizer.state_dict()["state"][0]["momentum_buffer"],
    )


def test_optimizer_state_is_safetensors_and_loads_back_exactly(tmp_path):
    """AdamW's moments and step counts, and every group setting, come back equal from a
    file that holds no pickle; a pickle there (what torch.save writes) is refused."""
    import io

    from hwnas.families.checkpoint import optimizer_bytes, optimizer_state

    source = trained_like(seed=4)
    optimizer = torch.optim.AdamW(source.parameters(), lr=3e-3, betas=(0.9, 0.95))
    source.train()
    source(torch.randn(2, 3, 32, 32)).sum().backward()
    optimizer.step()
    data = optimizer_bytes(optimizer.state_dict())
    assert b"torch" not in data[:64] and data[8:9] == b"{"  # a safetensors JSON header
    restored = torch.optim.AdamW(source.parameters(), lr=1.0)
    restored.load_state_dict(optimizer_state(data, "side"))
    a, b = optimizer.state_dict(), restored.state_dict()
    assert [{**g, "betas": list(g["betas"])} for g in a["param_groups"]] == b["param_groups"]
    assert a["state"].keys() == b["state"].keys()
    for index, values in a["state"].items():
        assert values.keys() == b["state"][index].keys()
        assert all(torch.equal(v, b["state"][index][k]) for k, v in values.items())
    pickled = io.BytesIO()
    torch.save(optimizer.state_dict(), pickled)
    with pytest.raises(HwnasError, match="side is corrupt or not safetensors"):
        optimizer_state(pickled.getvalue(), "side")


def test_checkpoint_header_is_readable_json(tmp_path):
    from safetensors import safe_open

    model = ElasticMobileNet()
    path = save_checkpoint(tmp_path / "c.safetensors", model, {"step": 7})
    with safe_open(str(path), framework="pt") as f:
        header = f.metadata()
    assert json.loads(header["space"]) == json.loads(json.dumps(model.space().describe()))
    assert json.loads(header["config"])["widths"] == [16, 24, 40, 64]
    assert header["hwnas_version"] and json.loads(header["meta"]) == {"step": 7}


def one_line_error(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("other", "what"),
    [
        (MobileNetConfig(final_width=96), "config.final_width: checkpoint 128, model 96"),
        (MobileNetConfig(kernels=(3, 5)), "space.choices"),
    ],
)
def test_checkpoint_for_another_config_is_refused(tmp_path, other, what):
    path = save_checkpoint(tmp_path / "c.safetensors", ElasticMobileNet(), {})
    target = ElasticMobileNet(other)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(HwnasError) as excinfo:
        load_checkpoint(path, target)
    message = one_line_error(excinfo)
    assert str(path) in message and what in message
    assert all(torch.equal(v, target.state_dict()[k]) for k, v in before.items())


def test_missing_and_corrupt_checkpoints_are_refused(tmp_path):
    model = ElasticMobileNet()
    with pytest.raises(HwnasError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.safetensors", model)
    path = save_checkpoint(tmp_path / "c.safetensors", model, {})
    data = path.read_bytes()
    cases = {
        "truncated": data[: len(data) // 2],
        "garbage": b"\x00not a checkpoint" * 10,
        "flipped": data[:-100] + bytes([data[-100] ^ 0xFF]) + data[-99:],
    }
    for name, corrupt in cases.items():
        bad = tmp_path / f"{name}.safetensors"
        bad.write_bytes(corrupt)
        with pytest.raises(HwnasError) as excinfo:
            load_checkpoint(bad, model)
        assert "corrupt" in one_line_error(excinfo) and str(bad) in str(excinfo.value)


def test_stale_optimizer_side_file_is_refused(tmp_path):
    model = ElasticMobileNet()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    path = save_checkpoint(tmp_path / "c.safetensors", model, {}, opt)
    side = optimizer_path(path).read_bytes()
    save_checkpoint(path, model, {"epoch": 2}, torch.optim.SGD(model.parameters(), lr=0.5))
    optimizer_path(path).write_bytes(side)
    with pytest.raises(HwnasError, match="does not belong"):
        load_checkpoint(path, model, opt)
    save_checkpoint(path, model, {})  # no optimizer this time
    with pytest.raises(HwnasError, match="without optimizer"):
        load_checkpoint(path, model, opt)


@pytest.mark.parametrize("killed", ["before the checkpoint", "before the state moved in"])
def test_a_save_killed_between_its_two_files_leaves_a_loadable_pair(tmp_path, monkeypatch,
                                                                    killed):  # fmt: skip
    """Checkpoint and optimizer state are two files: a kill between their writes must leave
    the old pair (or the new one) loadable, never a checkpoint whose state is gone."""
    import hwnas.families.checkpoint as checkpoint

    model = ElasticMobileNet()
    first, second = (torch.optim.SGD(model.parameters(), lr=lr) for lr in (0.1, 0.5))
    path = save_checkpoint(tmp_path / "c.safetensors", model, {"epoch": 1}, first)
    writes = checkpoint.write_atomic

    def kill(*args):
        raise KeyboardInterrupt

    if killed == "before the checkpoint":
        monkeypatch.setattr(checkpoint, "write_atomic", lambda target, data: (
            writes(target, data) if str(target).endswith(".next") else kill()))  # fmt: skip
    else:
        replace = checkpoint.os.replace
        monkeypatch.setattr(checkpoint.os, "replace", lambda source, target: (
            kill() if str(source).endswith(".next") else replace(source, target)))  # fmt: skip
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, model, {"epoch": 2}, second)
    monkeypatch.undo()
    loaded = torch.optim.SGD(model.parameters(), lr=0.9)
    epoch = load_checkpoint(path, model, loaded)["epoch"]
    assert (epoch, loaded.param_groups[0]["lr"]) == ((1, 0.1) if killed == "before the checkpoint"
                                                     else (2, 0.5))  # fmt: skip


def test_build_family_applies_overrides_and_refuses_bad_ones():
    net = build_family(
        "mobilenet",
        {
            "widths": [8, 16],
            "strides": [1, 2],
            "se_stages": [False, True],
            "hswish_stages": [False, True],
        },
        image_spec(1, 5),
    )
    assert net.config.widths == (8, 16) and net.config.in_channels == 1
    assert net(torch.randn(2, 1, 32, 32)).shape == (2, 5)
    with pytest.raises(HwnasError, match="unknown super-network 'resnet'"):
        build_family("resnet", None, image_spec())
    with pytest.raises(HwnasError, match="no key 'widht'"):
        build_family("mobilenet", {"widht": [8]}, image_spec())
    with pytest.raises(HwnasError, match="set by the dataset"):
        build_family("mobilenet", {"num_classes": 3}, image_spec())
    with pytest.raises(HwnasError, match="one entry per stage"):
        build_family("mobilenet", {"widths": [8, 16]}, image_spec())
    with pytest.raises(HwnasError, match="odd"):
        build_family("mobilenet", {"kernels": [3, 4]}, image_spec())
