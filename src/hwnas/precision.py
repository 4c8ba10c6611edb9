"""Per-layer precision searched together with the architecture (SimQ-NAS).

A family declares its quantizable layers (``Family.quantizable_layers``: a MobileNet's stem,
blocks and head, a transformer's blocks), each active exactly when the architecture runs it.
``PrecisionPolicy`` adds one choice ``precision.<layer>`` per layer to the family's space, so
every searcher works unchanged; families ignore ``precision.*`` values (``strip_policy``),
so every analytic hook still answers for the architecture.

A sub-network is evaluated as the model it would be deployed as: its fp32 ONNX export,
quantized by ``hwnas.quantize`` layer by layer as the policy says (INT8 QDQ static,
calibrated on the task's calibration inputs; INT4 weight-only with AWQ scales for the linear
layers of transformers), run by ONNX Runtime for quality and latency, its file weighed.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import onnx
import torch

from hwnas.errors import HwnasError
from hwnas.space import Arch, Space, Value, categorical

if TYPE_CHECKING:
    from hwnas.families.base import ArchLike, Family

PREFIX = "precision."
PRECISIONS = ("fp32", "int8", "int4")
SKIPPED_OPS = {"Identity", "Constant"}  # folded away before quantizing; never excluded by name


@dataclass(frozen=True)
class QuantizableLayer:
    """One layer whose precision is chosen: ``linear`` layers (only matrix products with
    constant weights) may also take ``int4`` weight-only; ``when``/``in_``: the architecture
    choice and its values under which the layer exists (a block of a deep-enough stage)."""

    name: str
    linear: bool = False
    when: str | None = None
    in_: tuple[Value, ...] = ()


def strip_policy(values: Mapping[str, Any]) -> dict[str, Any]:
    """The architecture part of an arch of a policy space."""
    return {k: v for k, v in values.items() if not k.startswith(PREFIX)}


def policy_of(values: Mapping[str, Any]) -> dict[str, str]:
    """The precision part: layer name -> precision, for the layers the arch runs."""
    return {k[len(PREFIX) :]: v for k, v in values.items() if k.startswith(PREFIX) and v}


class PrecisionPolicy:
    """The family's space with a precision per quantizable layer, and the quantized model
    of any arch of it.

    ``precisions`` are the options every layer may take (``int4`` only where a layer is
    linear); a single precision fixes every layer to it (``[int8]``: quantize everything,
    the usual recipe). ``calibration``: inputs as the task gives them (full input size),
    that quantization calibrates on; ``batchnorm``: those batch norm is recalibrated on, as
    for fp32 evaluation (default: ``calibration``).
    """

    def __init__(
        self,
        family: Family,
        precisions: Sequence[str],
        calibration: torch.Tensor,
        awq: bool = True,
        block_size: int = 32,
        fixed: Mapping[str, str] | None = None,
        batchnorm: torch.Tensor | None = None,
    ) -> None:
        unknown = [p for p in precisions if p not in PRECISIONS]
        if unknown or not precisions:
            raise HwnasError(f"quantize.precisions: {unknown or precisions!r}: choose from "
                             f"{', '.join(PRECISIONS)}")  # fmt: skip
        if len(calibration) == 0:
            raise HwnasError("quantize.calibration: no calibration inputs to quantize with")
        self.family = family
        self.precisions = tuple(dict.fromkeys(precisions))
        self.calibration = calibration
        self.batchnorm = calibration if batchnorm is None else batchnorm
        self.awq = awq
        self.block_size = block_size
        self.layers = {layer.name: layer for layer in family.quantizable_layers()}
        self.fixed = dict(fixed or {})
        for name, precision in self.fixed.items():
            layer = self.layers.get(name)
            if layer is None:
                known = ", ".join(self.layers) or "none"
                raise HwnasError(f"quantize.fixed: the {family.name} family has no layer "
                                 f"{name!r}; its layers: {known}")  # fmt: skip
            if precision == "int4" and not layer.linear:
                raise HwnasError(f"quantize.fixed.{name}: int4 is for linear layers; {name} "
                                 "is not one")  # fmt: skip
        base = family.space()
        self.options = {name: self._options(layer) for name, layer in self.layers.items()}
        choices = [categorical(PREFIX + name, options, when=layer.when, in_=layer.in_)
                   for (name, layer), options in zip(self.layers.items(), self.options.values(),
                                                     strict=True)
                   if len(options) > 1]  # fmt: skip
        if "int4" in self.precisions and not any("int4" in o for o in self.options.values()):
            raise HwnasError(f"quantize.precisions: int4 is for linear layers; the "
                             f"{family.name} family has none")  # fmt: skip
        width = len(base.choices)
        encoder = base.encoder
        self.space = Space(
            [*base.choices, *choices],
            name=f"{base.name}+precision",
            encoder=None if encoder is None else lambda rows: encoder(rows[:, :width]),
        )

    def _options(self, layer: QuantizableLayer) -> tuple[str, ...]:
        if layer.name in self.fixed:
            return (self.fixed[layer.name],)
        return tuple(p for p in self.precisions if p != "int4" or layer.linear)

    def policy(self, arch: ArchLike) -> dict[str, str]:
        """Layer -> precision for every layer ``arch`` runs (fixed ones included)."""
        values = _values(arch)
        chosen = policy_of(values)
        active = self.family.quantizable_modules(strip_policy(values))
        return {name: chosen.get(name, self.options[name][0]) for name in active}

    def label(self, arch: ArchLike) -> str:
        """The family's label and the policy's counts: ``r24 d2-1-2-2 k5.0 e2.0 int8x7 fp32x2``."""
        counts = Counter(self.policy(arch).values())
        policy = " ".join(f"{p}x{counts[p]}" for p in PRECISIONS if counts[p])
        return f"{self.family.label(strip_policy(_values(arch)))} {policy}"

    # -- the quantized model -------------------------------------------------------------
    def quantize(
        self, module: torch.nn.Module, example: torch.Tensor, arch: ArchLike,
        calibration: torch.Tensor,
    ) -> bytes:  # fmt: skip
        """``module`` (the arch's extracted fp32 sub-network, batch norm recalibrated)
        exported on ``example`` with a dynamic batch and quantized as ``arch``'s policy
        says, calibrated on ``calibration`` (inputs of ``example``'s shape)."""
        from hwnas.hardware.measure import to_onnx
        from hwnas.quantize import quantize_int4, quantize_int8
        from hwnas.quantize.graph import nodes_of_all

        policy = self.policy(arch)
        paths = self.family.quantizable_modules(strip_policy(_values(arch)))
        model = to_onnx(module.eval(), example, dynamic_batch=True)
        inputs = calibration.numpy()
        for precision in ("int4", "int8"):  # int4 first: AWQ folds scales within its layers
            layers = [p for name, kind in policy.items() if kind == precision for p in paths[name]]
            if not layers:
                continue
            proto = onnx.load_from_string(model)
            inside = set(nodes_of_all(proto, layers))
            keep = [
                n.name
                for n in proto.graph.node
                if n.name and n.name not in inside and n.op_type not in SKIPPED_OPS
            ]
            if precision == "int4":
                model = quantize_int4(model, inputs, awq=self.awq, block_size=self.block_size,
                                      keep_fp32=keep)  # fmt: skip
            else:
                model = quantize_int8(model, inputs, keep_fp32=keep)
        return model

    def deployed(self, module: torch.nn.Module, arch: ArchLike) -> bytes:
        """The model as exported: at the arch's own input size (``Family.deployed_input``),
        calibrated on the same inputs brought to that size, so it computes what the search
        measured."""
        example = self.family.deployed_input(arch, 1, torch.Generator().manual_seed(0))
        calibration = self.family.to_deployed(arch, self.calibration)
        return self.quantize(module, example, arch, calibration)

    @functools.lru_cache(maxsize=1)  # noqa: B019 - quality and latency ask for one arch in turn
    def evaluated(self, arch: Arch):  # -> hwnas.quantize.OnnxModule
        """The quantized model as the search measures it: fed the task's inputs."""
        from hwnas.evaluate.quality import recalibrate_batchnorm
        from hwnas.quantize import OnnxModule

        module = self.family.extract(arch)
        recalibrate_batchnorm(module, self.batchnorm)
        example = self.family.example_input(1, torch.Generator().manual_seed(0))
        return OnnxModule(self.quantize(module, example, arch, self.calibration))


def _values(arch: ArchLike) -> dict[str, Any]:
    return arch.to_dict() if isinstance(arch, Arch) else dict(arch)


def weight_summary(model: bytes) -> dict[str, float]:
    """``model_bytes`` (the file) and ``weight_bytes`` (its weights, int4 at half a byte)."""
    from hwnas.quantize import file_bytes, weight_bytes

    return {"model_bytes": float(file_bytes(model)),
            "weight_bytes": float(weight_bytes(model)["total"])}  # fmt: skip


class DeployedModel:
    """An exported quantized model (the arch's own input size) fed the task's inputs, so the
    task can score it: ``family.to_deployed`` first, then ONNX Runtime."""

    def __init__(self, model: bytes, family: Family, arch: ArchLike) -> None:
        from hwnas.quantize import OnnxModule

        self.onnx = OnnxModule(model)
        self.family, self.arch = family, arch

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.onnx(self.family.to_deployed(self.arch, x))

    def eval(self) -> DeployedModel:
        return self
