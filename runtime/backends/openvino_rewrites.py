"""What the OpenVINO backend changes in a step graph at load, so that every product runs in the
precision it compiles for. Each rewrite is exact: the graph computes the same values.

OpenVINO's CPU plugin lowers a product to bf16 (or fp16) only when none of its inputs comes
straight from a constant: FullyConnected (x @ W^T, the weight on the right) converts its weight
itself, but a MatMul whose first input is a weight keeps that input, and so the whole product, in
fp32. The export writes the MLP across positions of `mlp_t` models that way (W @ x, the form ONNX
Runtime runs fastest), so in a bf16 step 60 of its 120 products ran fp32 kernels
(brgemm_avx512_f32: 44% of the step) and Reorders converted their inputs back and forth.

`route_left_weights` gives each such weight one multiplication by a scalar input that the backend
binds to exactly 1.0: the product's first input is then computed, not constant, the plugin lowers
it with the rest, and the weight is converted once per step instead of at every use.
"""

from __future__ import annotations

from typing import Any

import numpy as np

ONE = "trm_edge_one"  # the scalar input route_left_weights adds (bound to 1.0)


def route_left_weights(model: Any, ov: Any) -> dict[str, np.ndarray]:
    """Rewrite `model` (an ov.Model) in place as the module says; returns the inputs it added,
    with the values to bind (none where no product takes a weight on the left)."""
    from openvino import opset13 as ops

    one = None
    routed: dict[Any, Any] = {}  # weight's output port -> its multiplication
    for node in model.get_ordered_ops():
        if node.get_type_name() != "MatMul":
            continue
        source = node.input_value(0)
        if source.get_node().get_type_name() != "Constant" or source.get_element_type() != ov.Type.f32:
            continue
        if one is None:
            one = ops.parameter([], ov.Type.f32, name=ONE)
            one.output(0).get_tensor().set_names({ONE})
        # One multiplication per weight, shared by every application of the net. Keyed on the
        # constant's output port itself (equal and hashed by node and index): friendly names are
        # not promised unique, and two weights sharing one would be merged into one product.
        if source not in routed:
            routed[source] = ops.multiply(source, one)
        node.input(0).replace_source_output(routed[source].output(0))
    if one is None:
        return {}
    model.add_parameters([one])
    model.validate_nodes_and_infer_types()
    return {ONE: np.ones((), dtype=np.float32)}
