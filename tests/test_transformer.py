"""The elastic transformer: its operators, routing, sharing, causality and schedules."""

import math

import pytest
import torch
import torch.nn.functional as F

from helpers import FAST_LATENCY, image_spec, token_spec
from hwnas.errors import HwnasError
from hwnas.export import export_subnet
from hwnas.families import build_family
from hwnas.families.memory import live_bytes
from hwnas.families.transformer import ElasticTransformer
from hwnas.families.transformer.operators import attend, linear_attention, phi, route

torch.set_num_threads(1)
SMALL = dict(ElasticTransformer.small_overrides)
KINDS = [(a, f, k) for a in ("softmax", "sigmoid", "linear")
         for f, k in (("mlp", None), ("glu", None), ("moe", 1), ("moe", 2))]  # fmt: skip


def small(spec=None, **overrides) -> ElasticTransformer:
    torch.manual_seed(0)
    net = build_family("transformer", {**SMALL, **overrides}, spec or token_spec(16))
    with torch.no_grad():  # norms off their initial values, so comparisons are not degenerate
        for p in net.parameters():
            if p.ndim == 1:
                p.add_(0.1 * torch.randn_like(p))
    return net.eval()


def uniform(net: ElasticTransformer, attention: str, ffn: str, top_k: int | None, **sizes):
    """The teacher's sizes (or ``sizes``) with every layer running the given operators."""
    values = {**net.teacher_arch().to_dict(), **sizes}
    for i in range(int(values["depth"])):
        values |= {f"l{i}.attention": attention, f"l{i}.ffn": ffn, f"l{i}.moe_k": top_k}
    return net.space().make(values)


def test_linear_attention_in_chunks_equals_the_quadratic_form():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 13, 4, generator=g) for _ in range(3))
    scores = phi(q) @ phi(k).transpose(-2, -1)
    causal = scores.tril()
    expected_causal = (causal @ v) / causal.sum(-1, keepdim=True)
    expected_full = (scores @ v) / scores.sum(-1, keepdim=True)
    for chunk in (1, 4, 5, 13, 32):  # 4 and 5 leave a padded last chunk
        got = linear_attention(q, k, v, causal=True, chunk=chunk)
        torch.testing.assert_close(got, expected_causal, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(linear_attention(q, k, v, False, 4), expected_full, atol=1e-5,
                               rtol=1e-5)  # fmt: skip


def test_softmax_and_sigmoid_attention():
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(2, 7, 8, generator=g) for _ in range(3))  # 2 heads of 4
    split = [t.reshape(2, 7, 2, 4).transpose(1, 2) for t in (q, k, v)]
    reference = F.scaled_dot_product_attention(*split, is_causal=True)
    got = attend(q, k, v, 2, "softmax", True, 4)
    torch.testing.assert_close(got, reference.transpose(1, 2).reshape(2, 7, 8))
    # sigmoid: weight sigmoid(q.k / sqrt(d) - log n), future weights zero, no normalisation
    weights = torch.sigmoid(split[0] @ split[1].transpose(-2, -1) / 2 - math.log(7)).tril()
    expected = (weights @ split[2]).transpose(1, 2).reshape(2, 7, 8)
    torch.testing.assert_close(attend(q, k, v, 2, "sigmoid", True, 4), expected)
    # with q.k = 0 every weight is sigmoid(-log n) = 1 / (n + 1)
    zero = torch.zeros(1, 7, 8)
    out = attend(zero, zero, v[:1], 2, "sigmoid", False, 4)
    torch.testing.assert_close(out, v[:1].sum(1, keepdim=True).expand(1, 7, 8) / 8)


def constant_experts(count: int):
    """Expert e maps every row to e + 1, so the output tells who took which token."""
    return [lambda t, e=e: torch.full_like(t, e + 1.0) for e in range(count)]


def test_top_k_routing_capacity_and_balance_loss():
    x = torch.zeros(1, 6, 3)
    prefer_first = torch.tensor([[[2.0, 0.0]] * 6])  # every token prefers expert 0
    out, balance = route(x, prefer_first, constant_experts(2), top_k=1, capacity=2)
    p = torch.softmax(torch.tensor([2.0, 0.0]), 0)
    first = p[0].item()  # one expert: weighted by its probability
    assert out[0, :, 0].tolist() == pytest.approx([first, first, 0, 0, 0, 0])  # the first two
    assert balance.item() == pytest.approx(2 * 1.0 * p[0].item())  # all load on one expert
    out, _ = route(x, prefer_first, constant_experts(2), top_k=2, capacity=6)
    # both experts, weights renormalised over the chosen two: p0 * 1 + p1 * 2
    torch.testing.assert_close(out[0, :, 0], torch.full((6,), p[0].item() + 2 * p[1].item()))
    alternate = torch.tensor([[[1.0, -1.0], [-1.0, 1.0]] * 3])
    out, balance = route(x, alternate, constant_experts(2), top_k=1, capacity=3)
    q = torch.softmax(torch.tensor([1.0, -1.0]), 0)[0].item()
    assert out[0, :, 0].tolist() == pytest.approx([q, 2 * q] * 3)
    assert balance.item() == pytest.approx(1.0)  # an even split scores 1


def test_routing_a_sequence_does_not_depend_on_its_batch():
    g = torch.Generator().manual_seed(2)
    x, logits = torch.randn(3, 10, 4, generator=g), torch.randn(3, 10, 4, generator=g)
    experts = [torch.nn.Linear(4, 4) for _ in range(4)]
    together, _ = route(x, logits, experts, 2, 4)
    alone, _ = route(x[1:2], logits[1:2], experts, 2, 4)
    torch.testing.assert_close(together[1:2], alone)


@pytest.mark.parametrize(("attention", "ffn", "top_k"), KINDS)
def test_every_operator_kind_extracts_exports_and_stays_causal(attention, ffn, top_k, tmp_path):
    for spec in (token_spec(16), image_spec(1, 3, size=16)):
        net = small(spec)
        arch = uniform(net, attention, ffn, top_k)
        x = net.example_input(2, torch.Generator().manual_seed(0))
        with torch.no_grad():
            net.set_active(arch)
            expected = net(x)
            assert (expected - net.extract(arch)(x)).abs().max() <= 1e-5
        record = export_subnet(net.extract(arch), lambda b, g, n=net: n.example_input(b, g),
                               tmp_path / "m.onnx", {}, FAST_LATENCY)  # fmt: skip
        assert record["max_abs_diff"] <= 1e-4
    net = small()
    net.set_active(uniform(net, attention, ffn, top_k))
    x = net.example_input(2, torch.Generator().manual_seed(1))
    changed = x.clone()
    changed[:, 9:] = (changed[:, 9:] + 1) % 256
    with torch.no_grad():
        before, after = net(x), net(changed)
    assert (before[:, :9] - after[:, :9]).abs().max() <= 1e-5  # the past never sees the future
    assert (before[:, 9:] - after[:, 9:]).abs().max() > 1e-3


def test_feed_forward_kinds_share_the_mlp_projections():
    net = small()
    x = net.example_input(2)

    def outputs() -> dict:
        with torch.no_grad():
            result = {}
            for ffn, k in (("mlp", None), ("glu", None), ("moe", 2)):
                net.set_active(uniform(net, "softmax", ffn, k))
                result[ffn] = net(x)
            return result

    before = outputs()
    layer = net.layers[0]
    for weight, moved in ((layer.gate, {"glu"}), (layer.router, {"moe"}),
                          (layer.up, {"mlp", "glu", "moe"})):  # fmt: skip
        with torch.no_grad():
            weight.add_(0.5)
        after = outputs()
        assert {k for k in before if not torch.allclose(before[k], after[k])} == moved
        before = after


def test_auxiliary_loss_comes_from_routing_layers_only():
    net = small().train()
    x = net.example_input(4)
    net.set_active(uniform(net, "softmax", "mlp", None))
    net(x)
    assert net.auxiliary_loss() is None
    net.set_active(uniform(net, "linear", "moe", 1))
    net(x)
    loss = net.auxiliary_loss()
    assert loss.requires_grad and 0 < loss.item() <= net.config.balance_weight * 2 * 2
    loss.backward()
    assert net.layers[0].router.grad.abs().sum() > 0


def test_teacher_runs_the_first_operators_at_every_largest_size():
    net = small(attentions=("linear", "softmax"), feed_forwards=("glu", "mlp"))
    teacher, smallest = net.teacher_arch(), net.smallest_arch()
    assert teacher["depth"] == 2 and teacher["width"] == 32 and teacher["l1.heads"] == 2
    assert teacher["l0.attention"] == "linear" and teacher["l1.ffn"] == "glu"
    assert smallest["depth"] == 1 and smallest["width"] == 16 and smallest["l0.mlp_ratio"] == 1


def test_schedule_by_hand_and_against_the_module():
    # tokens, context 16, width 16, 1 head of 8, MLP ratio 1: every tensor by hand
    net = small()
    arch = uniform(net, "softmax", "mlp", None, depth=1, width=16, **{"l0.heads": 1,
                   "l0.mlp_ratio": 1})  # fmt: skip
    schedule = net.op_schedule(arch)
    sizes = {op.name: op.elements for op in schedule}
    assert sizes == {"input": 16, "embed": 256, "embed.position": 256, "l0.norm1": 256,
                     "l0.q": 128, "l0.k": 128, "l0.v": 128, "l0.scores": 256,
                     "l0.context": 128, "l0.o": 256, "l0.add1": 256, "l0.norm2": 256,
                     "l0.up": 256, "l0.down": 256, "l0.add2": 256, "norm": 256,
                     "logits": 16 * 256}  # fmt: skip
    live = live_bytes(schedule, 1)
    # at the scores: embed.position (residual, read by add1), q, k (inputs), v (read later)
    assert live["l0.scores"] == 256 + 128 * 3 + 256
    # causal linear attention, context 16 in chunks of 4: 4 chunks of 8 x 8 states per head
    linear = uniform(net, "linear", "moe", 1, **{"l0.heads": 2, "l1.heads": 1})
    sizes = {op.name: op.elements for op in net.op_schedule(linear)}
    assert sizes["l0.state"] == sizes["l0.prefix"] == 2 * 4 * 8 * 8
    assert sizes["l0.scores"] == 2 * 4 * 4 * 4 and sizes["l0.k_sum"] == 2 * 4 * 8
    assert sizes["l0.e0.gather"] == 10 * 32  # capacity: 1.25 x 16 tokens / 2 experts
    for attention, ffn, top_k in KINDS:
        arch = uniform(net, attention, ffn, top_k)
        sizes = {op.name: op.elements for op in net.op_schedule(arch)}
        assert module_sizes(net.extract(arch), net.example_input(1)).items() <= sizes.items()


def module_sizes(sub, x) -> dict[str, int]:
    """Elements of the tensors the extracted module's submodules write, by schedule name."""
    seen: dict[str, int] = {}

    def record(name: str, of_input: bool = False):
        def hook(module, args, output):
            seen[name] = (args[0] if of_input else output).numel()

        return hook

    sub.embed.register_forward_hook(record("embed.position"))
    for i, block in enumerate(sub.blocks):
        p = f"l{i}."
        block.norm1.register_forward_hook(record(p + "norm1"))
        block.norm2.register_forward_hook(record(p + "norm2"))
        for name in ("q", "k", "v", "o"):
            getattr(block.attention, name).register_forward_hook(record(p + name))
        block.attention.o.register_forward_hook(record(p + "context", of_input=True))
        ffn = block.ffn
        if hasattr(ffn, "router"):
            ffn.router.register_forward_hook(record(p + "router"))
            for e, expert in enumerate(ffn.experts):
                expert.up.register_forward_hook(record(p + f"e{e}.gather", of_input=True))
                expert.up.register_forward_hook(record(p + f"e{e}.up"))
                expert.down.register_forward_hook(record(p + f"e{e}.down"))
        else:
            for name in ("gate", "up", "down"):
                if hasattr(ffn, name):
                    getattr(ffn, name).register_forward_hook(record(p + name))
            if hasattr(ffn, "gate"):
                ffn.down.register_forward_hook(record(p + "mul", of_input=True))
    sub.head.norm.register_forward_hook(record("norm"))
    sub.head.logits.register_forward_hook(record("logits"))
    with torch.no_grad():
        sub(x)
    assert len(seen) > 10
    return seen


@pytest.mark.parametrize(
    ("overrides", "spec", "fragment"),
    [
        ({"attentions": ["softmax", "cosine"]}, None, "unknown operator 'cosine'"),
        ({"feed_forwards": ["mlp", "mlp"]}, None, "distinct operators"),
        ({"max_context": 8}, None, "context 16 is longer than the transformer allows"),
        ({"experts": 3}, None, "do not split into 3 experts"),
        ({"context": 32}, None, "'context' is set by the dataset"),
        ({"patch_size": 5}, image_spec(1, 3, size=16), "not a multiple of patch_size"),
        ({"widths": [32, 16]}, None, "strictly increasing"),
        ({"widht": [16]}, None, "widht: Extra inputs"),
    ],
)
def test_bad_configs_are_one_line_errors(overrides, spec, fragment):
    with pytest.raises(HwnasError) as excinfo:
        build_family("transformer", {**SMALL, **overrides}, spec or token_spec(16))
    assert fragment in str(excinfo.value) and "\n" not in str(excinfo.value)
