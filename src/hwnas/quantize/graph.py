"""ONNX graph helpers shared by the quantizers: module paths of nodes, initializers behind
``Identity`` nodes, and running a model for its intermediate tensors.

The TorchScript exporter names each node after the modules it ran in, one ``/`` segment per
module: ``/blocks/blocks.0/expand/expand.0/Conv`` is the ``Conv`` of module
``blocks.0.expand.0``. A child of a container carries its container's segment as a prefix
(``blocks`` then ``blocks.0``; a container nested inside another repeats the whole path:
``/layers.0/layers.0.2/layers.0.2.0/MatMul``), and a named attribute is its own segment
(``attention`` then ``q``). ``module_of`` undoes that; ``nodes_of`` finds a module's nodes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import onnx
from onnx import numpy_helper

from hwnas.errors import HwnasError
from hwnas.hardware.measure import onnx_session


def module_of(node_name: str) -> str | None:
    """The module path a node was exported from (``blocks.0.expand.0``), ``""`` for the top
    module, ``None`` for a node the exporter did not name after modules (``Identity_3``)."""
    if not node_name.startswith("/"):
        return None
    segments = node_name.split("/")[1:-1]  # drop the leading "" and the op's own name
    path, previous = "", ""
    for segment in segments:
        if previous and segment.startswith(previous + "."):
            path += segment[len(previous) :]
        else:
            path = f"{path}.{segment}" if path else segment
        previous = segment
    return path


def nodes_of(model: onnx.ModelProto, module_path: str) -> list[str]:
    """Names of the nodes exported from module ``module_path`` or any module inside it
    (``blocks.1`` holds ``blocks.1.expand.0`` but not ``blocks.10``); an exact node name is
    accepted too. A path that matches no node is an ``HwnasError``."""
    wanted = module_path.strip().strip(".")
    found = []
    for node in model.graph.node:
        if node.name == module_path:
            found.append(node.name)
            continue
        path = module_of(node.name)
        if wanted and path is not None and (path == wanted or path.startswith(wanted + ".")):
            found.append(node.name)
    if not found:
        modules = sorted({p.split(".")[0] for n in model.graph.node if (p := module_of(n.name))})
        raise HwnasError(f"layer {module_path!r} matches no node of the model "
                         f"(its top-level modules: {', '.join(modules)})")  # fmt: skip
    return found


def nodes_of_all(model: onnx.ModelProto, paths: Iterable[str]) -> list[str]:
    """``nodes_of`` for each path, concatenated without repeats (order kept)."""
    names: dict[str, None] = {}
    for path in paths:
        names.update(dict.fromkeys(nodes_of(model, path)))
    return list(names)


def initializers(model: onnx.ModelProto) -> dict[str, onnx.TensorProto]:
    return {t.name: t for t in model.graph.initializer}


def producers(model: onnx.ModelProto) -> dict[str, onnx.NodeProto]:
    """Tensor name -> the node writing it."""
    return {out: node for node in model.graph.node for out in node.output}


def materialise_identities(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy where each ``Identity`` of an initializer becomes an initializer of its own.

    The TorchScript exporter stores equal tensors once and hands them to other layers through
    ``Identity`` nodes (norm gains at their initial ones, zero biases). A quantizer must give
    each layer its own tensor: an int8 bias is quantized with its own layer's scales, and a
    scale folded into one layer's norm must not reach the next.
    """
    model = onnx.ModelProto.FromString(model.SerializeToString())
    stored = initializers(model)
    kept = []
    for node in model.graph.node:
        if node.op_type == "Identity" and node.input[0] in stored:
            copy = onnx.TensorProto()
            copy.CopyFrom(stored[node.input[0]])
            copy.name = node.output[0]
            model.graph.initializer.append(copy)
        else:
            kept.append(node)
    del model.graph.node[:]
    model.graph.node.extend(kept)
    drop_unused_initializers(model)
    return model


def read_names(model: onnx.ModelProto) -> set[str]:
    """Every tensor some node or the graph's outputs read."""
    read = {name for node in model.graph.node for name in node.input}
    return read | {o.name for o in model.graph.output}


def drop_unused_initializers(model: onnx.ModelProto) -> None:
    """Remove, in place, the initializers nothing reads any more (ONNX Runtime warns of
    them, and they weigh in the file)."""
    read = read_names(model)
    for tensor in [t for t in model.graph.initializer if t.name not in read]:
        model.graph.initializer.remove(tensor)


def constant(model: onnx.ModelProto, name: str) -> np.ndarray | None:
    """The value of initializer ``name`` (through ``Identity`` nodes), or None."""
    stored = initializers(model)
    made = producers(model)
    while name not in stored and name in made and made[name].op_type == "Identity":
        name = made[name].input[0]
    return numpy_helper.to_array(stored[name]) if name in stored else None


def set_initializer(model: onnx.ModelProto, name: str, value: np.ndarray) -> None:
    """Replace (or add) initializer ``name`` with ``value``, in place."""
    tensor = numpy_helper.from_array(np.ascontiguousarray(value), name)
    for i, existing in enumerate(model.graph.initializer):
        if existing.name == name:
            model.graph.initializer[i].CopyFrom(tensor)
            return
    model.graph.initializer.append(tensor)


def unique_name(model: onnx.ModelProto, base: str) -> str:
    taken = {t.name for t in model.graph.initializer} | {i.name for i in model.graph.input}
    taken |= {o for n in model.graph.node for o in n.output} | {n.name for n in model.graph.node}
    name, i = base, 0
    while name in taken:
        i += 1
        name = f"{base}_{i}"
    return name


def fixed_batch(model: onnx.ModelProto) -> int | None:
    """The batch size the model's input is fixed to (``to_onnx`` without a dynamic batch bakes
    it into reshapes too), or None when its batch axis is dynamic."""
    dims = model.graph.input[0].type.tensor_type.shape.dim
    return dims[0].dim_value if dims and dims[0].HasField("dim_value") else None


def batches(inputs, batch_size: int, model: onnx.ModelProto | None = None) -> list[np.ndarray]:
    """Calibration inputs (a tensor or array with a batch axis, or a sequence of batches) as
    numpy batches of at most ``batch_size``, or of exactly the batch ``model`` is fixed to;
    no samples at all is an ``HwnasError``."""
    fixed = fixed_batch(model) if model is not None else None
    batch_size = fixed or batch_size
    if isinstance(inputs, np.ndarray) or hasattr(inputs, "numpy"):
        arrays = [_as_array(inputs)]
    else:
        arrays = [_as_array(x) for x in inputs]
    out = [a[i : i + batch_size] for a in arrays for i in range(0, len(a), batch_size)]
    if fixed:
        out = [b for b in out if len(b) == fixed]
    if not out:
        raise HwnasError("quantization needs calibration samples, got none")
    return out


def _as_array(x) -> np.ndarray:
    array = x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)
    if array.ndim == 0:
        raise HwnasError("calibration inputs need a batch axis, got a scalar")
    return array


def run_with_outputs(
    model: onnx.ModelProto, feeds: Sequence[np.ndarray], names: Sequence[str]
) -> dict[str, list[np.ndarray]]:
    """Run ``model`` on each batch of ``feeds`` with intermediate tensors ``names`` made graph
    outputs, and return each tensor's values batch by batch."""
    augmented = onnx.ModelProto.FromString(model.SerializeToString())
    present = {o.name for o in augmented.graph.output}
    for name in names:
        if name not in present:
            augmented.graph.output.append(onnx.ValueInfoProto(name=name))
    session = onnx_session(augmented.SerializeToString(), threads=1)
    values: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for x in feeds:
        results = session.run(list(names), {"input": x})
        for name, value in zip(names, results, strict=True):
            values[name].append(value)
    return values


def run(model: onnx.ModelProto | bytes, feeds: Sequence[np.ndarray]) -> np.ndarray:
    """The model's first output on each batch of ``feeds``, concatenated along the batch
    (split into the batch a fixed-batch model takes)."""
    proto = onnx.load_from_string(model) if isinstance(model, bytes) else model
    session = onnx_session(proto.SerializeToString(), threads=1)
    step = fixed_batch(proto)
    outs = []
    for x in feeds:
        for i in range(0, len(x), step or len(x)):
            outs.append(session.run(None, {"input": x[i : i + (step or len(x))]})[0])
    return np.concatenate(outs)
