"""Checks and clean-ups on exported ONNX graphs: dedupe constants, full checker, and the
TensorRT-friendliness rules (op allow-list, no control flow, static shapes but batch)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import onnx
from onnx import numpy_helper

from trm_edge.errors import TrmEdgeError

# Ops that the TensorRT ONNX parser supports in 10.x (and 11.x) for our dtypes, taken from its
# operator support matrix; the exporter emits a subset of these. Anything else fails the export.
TENSORRT_OPS = frozenset(
    {
        "Add", "ArgMax", "Cast", "Concat", "Constant", "ConstantOfShape", "DequantizeLinear", "Div", "Equal", "Expand",
        "Gather", "Gemm", "Identity", "MatMul", "Mul", "Neg", "Pad", "Pow", "ReduceMean", "ReduceSum",
        "QuantizeLinear", "Reshape", "Shape", "Sigmoid", "Slice", "Softmax", "Split", "Sqrt", "Squeeze", "Sub", "Tile",
        "Transpose", "Unsqueeze", "Where",
    }
)  # fmt: skip
CONTROL_FLOW = frozenset({"Loop", "If", "Scan"})
# Constants at least this large become shared initializers (tracing repeats them per use).
_DEDUPE_MIN_BYTES = 64


def dedupe_constants(model: onnx.ModelProto) -> int:
    """Make large Constant nodes initializers and merge initializers with identical contents.

    Tracing an unrolled recursion repeats every folded constant (rotary tables, casts) once per
    cycle; merging them keeps the file near params x bytes per param. Returns bytes saved.
    """
    graph = model.graph
    kept_nodes = []
    for node in graph.node:
        if node.op_type == "Constant" and len(node.attribute) == 1 and node.attribute[0].name == "value":
            tensor = node.attribute[0].t
            if len(tensor.raw_data) >= _DEDUPE_MIN_BYTES:
                tensor.name = node.output[0]
                graph.initializer.append(tensor)
                continue
        kept_nodes.append(node)
    del graph.node[:]
    graph.node.extend(kept_nodes)

    canonical: dict[tuple, str] = {}
    rename: dict[str, str] = {}
    unique = []
    saved = 0
    for init in graph.initializer:
        data = init.raw_data or numpy_helper.to_array(init).tobytes()
        key = (init.data_type, tuple(init.dims), hashlib.sha256(data).hexdigest())
        if key in canonical:
            rename[init.name] = canonical[key]
            saved += len(data)
        else:
            canonical[key] = init.name
            unique.append(init)
    del graph.initializer[:]
    graph.initializer.extend(unique)
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in rename:
                node.input[i] = rename[name]
    for out in graph.output:
        if out.name in rename:
            raise TrmEdgeError(f"graph output {out.name} is a constant; export cannot dedupe it")
    return saved


def check_graph(path: Path, dynamic_batch: bool) -> list[str]:
    """Full ONNX check plus TensorRT rules; returns the sorted op types. Raises on a violation."""
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except onnx.checker.ValidationError as exc:
        raise TrmEdgeError(f"{path.name} fails the ONNX checker: {exc}") from None
    model = onnx.load(str(path))
    ops = sorted({n.op_type for n in model.graph.node})
    flow = sorted(CONTROL_FLOW.intersection(ops))
    if flow:
        raise TrmEdgeError(f"{path.name} contains control flow ({', '.join(flow)}); the step must be unrolled")
    foreign = sorted(set(ops) - TENSORRT_OPS)
    if foreign:
        raise TrmEdgeError(f"{path.name} uses ops outside TensorRT's ONNX parser list: {', '.join(foreign)}")
    for value in list(model.graph.input) + list(model.graph.output):
        dims = value.type.tensor_type.shape.dim
        for axis, dim in enumerate(dims):
            symbolic = dim.HasField("dim_param")
            if symbolic and not (axis == 0 and dynamic_batch):
                raise TrmEdgeError(f"{path.name}: {value.name} axis {axis} is dynamic; only the batch may be")
    return ops


def finalize_graph(path: Path, shapes: dict[str, list[int | str]]) -> None:
    """Dedupe constants and state every I/O's shape as the export spec says (tracing leaves some
    axes symbolic that are static), rewriting the file once."""
    model = onnx.load(str(path))
    dedupe_constants(model)
    for value in list(model.graph.input) + list(model.graph.output):
        if value.name not in shapes:
            continue
        dims = value.type.tensor_type.shape.dim
        del dims[:]
        for size in shapes[value.name]:
            dim = dims.add()
            if isinstance(size, str):
                dim.dim_param = size
            else:
                dim.dim_value = size
    onnx.save(model, str(path))
