"""The int8 step graph's clean-up and checks: standard ONNX QDQ, as TensorRT's explicit
quantization, ONNX Runtime and OpenVINO read it.

The exporter writes each fake-quantized weight as float initializer -> QuantizeLinear ->
DequantizeLinear. `fold_weight_quantization` stores the int8 result instead (int8 initializer ->
DequantizeLinear -> MatMul): a quarter of the bytes, and the form every runtime's int8 pattern
matching expects. `check_qdq` holds the graph to TensorRT's rules for explicit quantization.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from trm_edge.errors import TrmEdgeError

QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})


def _constants(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    values = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return values


def _axis(node: onnx.NodeProto) -> int:
    return next((a.i for a in node.attribute if a.name == "axis"), 1)


def quantize_array(x: np.ndarray, scale: np.ndarray, zero_point: np.ndarray, axis: int) -> np.ndarray:
    """ONNX QuantizeLinear on a constant (round half to even, saturate to int8)."""
    if scale.ndim == 1 and scale.size > 1:
        shape = [1] * x.ndim
        shape[axis] = scale.size
        scale, zero_point = scale.reshape(shape), zero_point.reshape(shape)
    q = np.rint(x.astype(np.float32) / scale) + zero_point.astype(np.float32)
    return np.clip(q, -128, 127).astype(np.int8)


def fold_weight_quantization(model: onnx.ModelProto) -> int:
    """Replace every QuantizeLinear of a constant by its int8 initializer; returns how many."""
    graph = model.graph
    values = _constants(graph)
    folded = []
    for node in graph.node:
        if node.op_type != "QuantizeLinear" or not all(name in values for name in node.input):
            continue
        x, scale = values[node.input[0]], values[node.input[1]]
        zero = values[node.input[2]] if len(node.input) > 2 else np.zeros_like(scale, dtype=np.int8)
        q = quantize_array(x, scale, zero, _axis(node))
        graph.initializer.append(numpy_helper.from_array(q, node.output[0]))
        folded.append(node)
    for node in folded:
        graph.node.remove(node)
    _drop_unused(graph)
    return len(folded)


def drop_casts_after_dequantize(model: onnx.ModelProto) -> int:
    """Bypass the Cast to float32 the exporter puts after each DequantizeLinear (its output is float32
    already, and the Cast hides the DequantizeLinear -> MatMul pattern); returns how many."""
    graph = model.graph
    made_by = {out: node for node in graph.node for out in node.output}
    outputs = {o.name for o in graph.output}
    dropped = []
    for node in graph.node:
        source = made_by.get(node.input[0]) if node.input else None
        to = next((a.i for a in node.attribute if a.name == "to"), None)
        if (node.op_type != "Cast" or source is None or source.op_type != "DequantizeLinear"
                or to != onnx.TensorProto.FLOAT or node.output[0] in outputs):
            continue
        for user in graph.node:
            for i, name in enumerate(user.input):
                if name == node.output[0]:
                    user.input[i] = node.input[0]
        dropped.append(node)
    for node in dropped:
        graph.node.remove(node)
    return len(dropped)


def _drop_unused(graph: onnx.GraphProto) -> None:
    used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    keep = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)
    dead = [n for n in graph.node if n.op_type == "Constant" and n.output[0] not in used]
    for node in dead:
        graph.node.remove(node)


def check_qdq(model: onnx.ModelProto, name: str = "step_int8.onnx") -> int:
    """TensorRT's rules for explicit quantization: int8 with zero points of 0, positive constant
    scales, per-channel scales only on constant weights; every weight stored int8 and every
    DequantizeLinear feeding a MatMul. Returns the number of int8 products; raises on a violation."""
    graph = model.graph
    values = _constants(graph)
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for i in node.input:
            consumers.setdefault(i, []).append(node)
    products = 0
    for node in graph.node:
        if node.op_type not in QDQ_OPS:
            continue
        where = f"{name}: {node.op_type} {node.name or node.output[0]}"
        if len(node.input) < 3 or node.input[1] not in values or node.input[2] not in values:
            raise TrmEdgeError(f"{where} needs a constant scale and zero point")
        scale, zero = values[node.input[1]], values[node.input[2]]
        if zero.dtype != np.int8 or np.any(zero != 0):
            raise TrmEdgeError(f"{where}: zero points must be int8 zeros for TensorRT, got {zero.dtype}")
        if np.any(scale <= 0) or not np.all(np.isfinite(scale)):
            raise TrmEdgeError(f"{where}: scales must be positive and finite")
        if node.op_type == "QuantizeLinear" and node.input[0] in values:
            raise TrmEdgeError(f"{where} quantizes a constant at run time: fold it (fold_weight_quantization)")
        if node.op_type == "DequantizeLinear":
            if scale.size > 1 and node.input[0] not in values:
                raise TrmEdgeError(f"{where}: per-channel scales are for constant weights only")
            users = consumers.get(node.output[0], [])
            if not users or any(u.op_type != "MatMul" for u in users):
                raise TrmEdgeError(f"{where} feeds {', '.join(u.op_type for u in users) or 'nothing'}, not a MatMul")
    dequantized = {n.output[0] for n in graph.node if n.op_type == "DequantizeLinear"}
    for node in graph.node:
        if node.op_type == "MatMul" and all(i in dequantized for i in node.input):
            products += 1
        elif node.op_type == "MatMul" and any(i in dequantized for i in node.input):
            raise TrmEdgeError(f"{name}: MatMul {node.name} has one int8 input and one float: quantize both")
    if products == 0:
        raise TrmEdgeError(f"{name} has no int8 products")
    return products
