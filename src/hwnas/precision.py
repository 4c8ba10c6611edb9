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

For device profiles, the policy also gives each arch's lookup-table layers at their
precision (``schedule``: a family marks which quantizable layer each table layer computes,
``Layer.part``), every entry a profile must time (``catalogue``), and each such entry as a
quantized model to time (``layer_module``).
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import onnx
import torch

from hwnas.errors import HwnasError
from hwnas.space import Arch, Space, Value, categorical

if TYPE_CHECKING:
    from hwnas.families.base import ArchLike, Family, Layer
    from hwnas.quantize import OnnxModule

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
        if not self.layers:
            raise HwnasError(f"quantize.precisions: the {family.name} family declares no "
                             "quantizable layers")  # fmt: skip
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

    def uniform(self, arch: ArchLike, precision: str) -> Arch:
        """``arch`` with every searched layer that may take ``precision`` set to it: the
        all-fp32 and all-int8 corners of a policy, which a profile's predictor must know."""
        values = _values(arch)
        for name, options in self.options.items():
            if len(options) > 1 and precision in options:
                values[PREFIX + name] = precision
        return self.space.make(values)

    # -- latency lookup tables (device profiles) -------------------------------------------
    def schedule(self, arch: ArchLike) -> list[Layer]:
        """The family's ``layer_schedule``, each quantizable layer at its policy's precision."""
        policy = self.policy(arch)
        layers = self.family.layer_schedule(strip_policy(_values(arch)))
        return [replace(layer, precision=policy[layer.part]) if layer.part in policy else layer
                for layer in layers]  # fmt: skip

    def catalogue(self) -> list[Layer]:
        """The family's ``layer_catalogue`` and a copy of each quantizable entry at every other
        precision its kind of layer takes (int4 for linear ones): what a profile must hold
        for any policy of this space."""
        base = self.family.layer_catalogue()
        variants = [replace(layer, precision=precision)
                    for precision in self.precisions if precision != "fp32"
                    for layer in base
                    if layer.part in self.layers
                    and (precision != "int4" or self.layers[layer.part].linear)]  # fmt: skip
        return [*base, *variants]

    def layer_module(self, layer: Layer) -> torch.nn.Module | OnnxModule:
        """A catalogue entry to time: the family's fp32 layer module, exported and quantized
        whole at the entry's precision. Calibrated with MinMax on random inputs and INT4 by
        round-to-nearest: ranges and AWQ's scales change values, not the graph or its time."""
        from hwnas.hardware.measure import to_onnx
        from hwnas.quantize import OnnxModule, quantize_int4, quantize_int8

        fp32 = replace(layer, precision="fp32")
        module = self.family.layer_module(fp32)
        if layer.precision == "fp32":
            return module
        model = to_onnx(module.eval(), fp32.example(1), dynamic_batch=True)
        if layer.precision == "int4":
            return OnnxModule(quantize_int4(model, awq=False, block_size=self.block_size))
        return OnnxModule(quantize_int8(model, fp32.example(8).numpy(), method="minmax"))

    @functools.lru_cache(maxsize=1)  # noqa: B019 - quality and latency ask for one arch in turn
    def evaluated(self, arch: Arch) -> OnnxModule:
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
