import numpy as np
import pytest
import torch

from helpers import ODD_CONFIG
from hwnas.errors import HwnasError
from hwnas.families.base import Op
from hwnas.families.memory import Peak, live_bytes, peak_live
from hwnas.families.mobilenet import ElasticMobileNet, MobileNetConfig, build_space
from hwnas.families.mobilenet.cost import cost
from hwnas.families.mobilenet.memory import (
    mobilenet_schedule,
    parameter_bytes,
    peak_activation,
    peak_activation_bytes,
)

torch.set_num_threads(1)

# Stage 0: blocks 2->2 (stride 1, residual); stage 1: 2->4 (stride 2) then 4->4 (residual),
# both with SE. One kernel (3) and one expand ratio (2), so an arch is resolution and depths.
TINY = MobileNetConfig(
    in_channels=1,
    stem_width=2,
    stem_stride=1,
    widths=(2, 4),
    strides=(1, 2),
    depths=(1, 2),
    kernels=(3,),
    expands=(2,),
    resolutions=(4, 8),
    se_stages=(False, True),
    hswish_stages=(False, True),
    final_width=4,
    num_classes=3,
    se_reduction=2,
)
TINY_SPACE = build_space(TINY)


def tiny_arch(resolution: int, depth0: int, depth1: int):
    values = {"resolution": resolution, "s0.depth": depth0, "s1.depth": depth1}
    for i in range(2):
        for j in range(2):
            values |= {f"s{i}.b{j}.kernel": 3, f"s{i}.b{j}.expand": 2}
    return TINY_SPACE.make(values)


def test_live_bytes_on_a_skip_graph():
    # x -> a -> b -> c(a, b) -> d(x, c) -> f, with a dead-end branch aux(b) after c.
    schedule = [
        Op("x", (), 10),
        Op("a", ("x",), 20),
        Op("b", ("a",), 30),
        Op("c", ("a", "b"), 5),
        Op("aux", ("b",), 1),
        Op("d", ("x", "c"), 8),
        Op("f", ("d",), 2),
    ]
    # x: {x} 10;  a: {x, a} 30;  b: {x (read by d), a (read by c), b} 60;
    # c: {x, a, b (read by aux), c} 65;  aux: {x, b, c (read by d), aux} 46 (a is dead);
    # d: {x, c, d} 23 (b and aux are dead);  f: {d, f} 10.
    assert live_bytes(schedule, 1) == {
        "x": 10,
        "a": 30,
        "b": 60,
        "c": 65,
        "aux": 46,
        "d": 23,
        "f": 10,
    }
    assert peak_live(schedule, 2) == Peak(130, "c")
    # Cut after b, nothing reads x or a later, so each dies at its last reader.
    assert live_bytes(schedule[:3], 1) == {"x": 10, "a": 30, "b": 50}


def test_live_bytes_refuses_malformed_schedules():
    with pytest.raises(HwnasError, match="'b' reads 'c' before"):
        live_bytes([Op("a", (), 1), Op("b", ("c",), 1), Op("c", ("a",), 1)])
    with pytest.raises(HwnasError, match="writes tensor 'a' twice"):
        live_bytes([Op("a", (), 1), Op("a", ("a",), 1)])


def test_tiny_peak_without_resize():
    # Input 1x8x8 at resolution 8: no resize, the stem reads the input. Elements:
    # input 64: {input} 64;  stem 2x8x8=128: {input, stem} 192.
    # s0.b0 (2->2, hidden 4, residual; block input x=stem 128 lives until the add):
    #   expand 4x8x8=256: {x, expand} 384;  depthwise 256: {x, expand, dw} 640;
    #   project 128: {x, dw, project} 512;  add 128: {x, project, add} 384.
    # s0.b1: the same with x = s0.b0.add: 384, 640, 512, 384.
    # s1.b0 (2->4, stride 2, hidden 4, SE reduced 2, no residual; x 128):
    #   expand 256: {x, expand} 384;  depthwise 4x4x4=64: {expand, dw} 320;
    #   se.pool 4: {dw, pool} 68;  se.reduce 2: {dw, pool, reduce} 70;
    #   se.expand 4: {dw, reduce, expand} 70;  se.mul 64: {dw, se.expand, mul} 132;
    #   project 4x4x4=64: {mul, project} 128.
    # s1.b1 (4->4, hidden 8, SE reduced 4, residual; x 64):
    #   expand 8x4x4=128: {x, expand} 192;  depthwise 128: {x, expand, dw} 320;
    #   se.pool 8: {x, dw, pool} 200;  se.reduce 4: {x, dw, pool, reduce} 204;
    #   se.expand 8: {x, dw, reduce, expand} 204;  se.mul 128: {x, dw, se.expand, mul} 328;
    #   project 64: {x, mul, project} 256;  add 64: {x, project, add} 192.
    # head 4x4x4=64: {add, head} 128;  pool 4: {head, pool} 68;  classifier 3: {pool, cls} 7.
    block0 = [384, 640, 512, 384]
    expected = [64, 192, *block0, *block0, 384, 320, 68, 70, 70, 132, 128]
    expected += [192, 320, 200, 204, 204, 328, 256, 192, 128, 68, 7]
    arch = tiny_arch(8, 2, 2)
    schedule = mobilenet_schedule(arch, TINY, 8)
    assert list(live_bytes(schedule, 1).values()) == expected
    assert [op.name for op in schedule][:8] == [
        "input",
        "stem",
        "s0.b0.expand",
        "s0.b0.depthwise",
        "s0.b0.project",
        "s0.b0.add",
        "s0.b1.expand",
        "s0.b1.depthwise",
    ]
    assert peak_activation(arch, TINY, 8) == Peak(4 * 640, "s0.b0.depthwise")
    assert peak_activation_bytes(arch, TINY, 8, bytes_per_element=1) == 640


def test_tiny_peak_with_resize():
    # Input 1x16x16 resized to 4x4, stage 0 one block deep. Elements:
    # input 256: 256;  resize 1x4x4=16: {input, resize} 272 (the peak);  stem 32: {resize, stem} 48.
    # s0.b0 (hidden 4, residual, x 32): expand 64: 96;  depthwise 64: 160;  project 32: 128;
    #   add 32: 96.
    # s1.b0 (stride 2, x 32): expand 4x4x4=64: {x, expand} 96;  depthwise 4x2x2=16: 80;
    #   se.pool 4: 20;  se.reduce 2: 22;  se.expand 4: 22;  se.mul 16: 36;  project 16: 32.
    # s1.b1 (hidden 8, x 16): expand 8x2x2=32: 48;  depthwise 32: 80;  se.pool 8: 56;
    #   se.reduce 4: 60;  se.expand 8: 60;  se.mul 32: 88;  project 16: 64;  add 16: 48.
    # head 4x2x2=16: 32;  pool 4: 20;  classifier 3: 7.
    expected = [256, 272, 48, 96, 160, 128, 96, 96, 80, 20, 22, 22, 36, 32]
    expected += [48, 80, 56, 60, 60, 88, 64, 48, 32, 20, 7]
    arch = tiny_arch(4, 1, 2)
    schedule = mobilenet_schedule(arch, TINY, 16)
    assert list(live_bytes(schedule, 1).values()) == expected
    assert [op.name for op in schedule][:3] == ["input", "resize", "stem"]
    assert peak_activation(arch, TINY, 16, bytes_per_element=1) == Peak(272, "resize")
    # From an 8x8 input the resize no longer dominates: the s0.b0 depthwise (160) does.
    assert peak_activation(arch, TINY, 8, bytes_per_element=1) == Peak(160, "s0.b0.depthwise")


def real_sizes(sub: torch.nn.Module, config: MobileNetConfig, arch, input_size: int):
    """Element counts of the tensors the extracted sub-network makes, under schedule names."""
    seen: dict[str, int] = {}
    x = torch.randn(1, config.in_channels, input_size, input_size)

    def record(name: str, of_input: bool = False):
        def hook(module, args, output):
            seen[name] = (args[0] if of_input else output).numel()

        return hook

    def stem_input(module, args):
        seen["input" if args[0] is x else "resize"] = args[0].numel()

    prefixes = [f"s{i}.b{j}" for i in range(len(config.widths)) for j in range(arch[f"s{i}.depth"])]
    sub.stem.register_forward_pre_hook(stem_input)
    sub.stem.register_forward_hook(record("stem"))
    for prefix, block in zip(prefixes, sub.blocks, strict=True):
        for part in ("expand", "depthwise", "project"):
            getattr(block, part).register_forward_hook(record(f"{prefix}.{part}"))
        if block.se is not None:
            block.se.reduce.register_forward_hook(record(f"{prefix}.se.pool", of_input=True))
            block.se.reduce.register_forward_hook(record(f"{prefix}.se.reduce"))
            block.se.expand.register_forward_hook(record(f"{prefix}.se.expand"))
            block.se.register_forward_hook(record(f"{prefix}.se.mul"))
        if block.residual:
            block.register_forward_hook(record(f"{prefix}.add"))
    sub.head.register_forward_hook(record("head"))
    sub.classifier.register_forward_hook(record("pool", of_input=True))
    sub.classifier.register_forward_hook(record("classifier"))
    with torch.no_grad():
        sub(x)
    seen["input"] = x.numel()
    return seen


@pytest.mark.parametrize(
    ("config", "input_size"),
    [
        (TINY, 8),
        (MobileNetConfig(), 32),
        (
            ODD_CONFIG,
            32,
        ),
    ],
)
def test_schedule_shapes_match_the_extracted_module(config, input_size):
    torch.manual_seed(0)
    model = ElasticMobileNet(config).eval()
    rng = np.random.default_rng(0)
    archs = [model.teacher_arch(), model.smallest_arch()]
    archs += [model.space().sample(rng) for _ in range(4)]
    largest = model.teacher_arch().to_dict()
    archs += [model.space().make({**largest, "resolution": r}) for r in config.resolutions]
    assert {a["resolution"] for a in archs} == set(config.resolutions)
    for arch in archs:
        schedule = mobilenet_schedule(arch, config, input_size)
        real = real_sizes(model.extract(arch), config, arch, input_size)
        assert real == {op.name: op.elements for op in schedule}


@pytest.fixture(scope="module")
def model() -> ElasticMobileNet:
    torch.manual_seed(0)
    return ElasticMobileNet().eval()


def test_peak_grows_with_resolution_and_expand_ratio(model):
    config, space = model.config, model.space()
    rng = np.random.default_rng(0)
    archs = [model.smallest_arch(), *(space.sample(rng) for _ in range(10))]
    for arch in archs:
        base = arch.to_dict()
        by_resolution = [
            peak_activation_bytes(space.make({**base, "resolution": r}), config, 32)
            for r in config.resolutions
        ]
        assert by_resolution == sorted(by_resolution) and by_resolution[0] < by_resolution[-1]
        peak = peak_activation_bytes(arch, config, 32)
        for name, value in base.items():
            if name.endswith(".expand") and value is not None:
                wider = space.make({**base, name: config.expands[-1]})
                assert peak_activation_bytes(wider, config, 32) >= peak
    smallest, largest = model.smallest_arch(), model.teacher_arch()
    assert peak_activation_bytes(smallest, config, 32) < peak_activation_bytes(largest, config, 32)


def test_tiny_parameter_bytes_by_hand():
    # (weights, output channels) per conv/linear of tiny_arch(8, 2, 2):
    # stem 1*2*9=18, 2;  s0.b0 and s0.b1: expand 8, 4;  depthwise 36, 4;  project 8, 2;
    # s1.b0: expand 8, 4;  depthwise 36, 4;  se.reduce 8, 2;  se.expand 8, 4;  project 16, 4;
    # s1.b1: expand 32, 8;  depthwise 72, 8;  se.reduce 32, 4;  se.expand 32, 8;  project 32, 4;
    # head 16, 4;  classifier 12, 3.  Weights 426, output channels 79.
    # int8: 426 + 8 * 79 = 1058.  fp32: 426 weights + 2 * 58 BN affine (every conv but the
    # SE's) + 18 SE biases + 3 classifier biases = 563 parameters, 2252 bytes.
    arch = tiny_arch(8, 2, 2)
    assert parameter_bytes(arch, TINY) == {"fp32": 2252, "int8": 1058}


def test_parameter_bytes_match_the_module(model):
    rng = np.random.default_rng(0)
    archs = [model.teacher_arch(), model.smallest_arch()]
    archs += [model.space().sample(rng) for _ in range(20)]
    for i, arch in enumerate(archs):
        sizes = parameter_bytes(arch, model.config)
        assert sizes["fp32"] == 4 * cost(arch, model.config).params
        assert sizes["int8"] < sizes["fp32"] / 3
        if i < 4:
            numel = sum(p.numel() for p in model.extract(arch).parameters())
            assert sizes["fp32"] == 4 * numel
