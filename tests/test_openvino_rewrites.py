"""OpenVINO's load-time rewrite (runtime/backends/openvino_rewrites.py) computes what the graph did.

The backend applies it only to a lowered (bf16) step, which a CPU without bf16 never compiles; here
it is forced at fp32 (`route_weights=True`), so every CPU holds it to the plain step's values."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trm_edge.contract.export_dir import read_metadata
from trm_edge.runtime.backends.openvino import OpenVinoBackend
from trm_edge.runtime.backends.openvino_rewrites import ONE, route_left_weights
from trm_edge.runtime.export_task import halting_and_limit
from trm_edge.runtime.solver import Solver

from conftest import TRAINED

PUZZLES = 4
STEPS = 4


def _left_weights(model: object) -> tuple[int, int]:
    """(products that take a float constant on the left, distinct constants among them)."""
    sources = [node.input_value(0) for node in model.get_ordered_ops()  # type: ignore[attr-defined]
               if node.get_type_name() == "MatMul" and node.input_value(0).get_node().get_type_name() == "Constant"]
    return len(sources), len(set(sources))


def _steps(backend: OpenVinoBackend, tokens: np.ndarray) -> list[dict[str, np.ndarray]]:
    """Every output of STEPS looped steps on `tokens`, copied (the backend reuses its buffers)."""
    backend.set_inputs(tokens, np.zeros(len(tokens), np.int32))
    outputs = []
    for step in range(STEPS):
        answer, q_halt, q_continue = backend.step(np.full(len(tokens), step == 0))
        outputs.append({"answer": answer.copy(), "q_halt": q_halt.copy(), "q_continue": q_continue.copy(),
                        "logits": backend.logits.copy(), "z_H": backend.state[0].copy(),
                        "z_L": backend.state[1].copy()})
    return outputs


def test_the_left_weight_rewrite_leaves_the_trained_models_steps_and_answers_unchanged(trained_export: Path) -> None:
    meta = read_metadata(trained_export)
    tokens = (np.load(TRAINED / "test_300.npz")["puzzles"][:PUZZLES] + 1).astype(np.int32)
    plain = OpenVinoBackend(trained_export, meta, PUZZLES, None, "fp32")
    routed = OpenVinoBackend(trained_export, meta, PUZZLES, None, "fp32", route_weights=True)
    # The rewrite ran (else this test compares the plain step with itself): the trained model's
    # MLP across positions takes its weights on the left, each shared by the net's applications.
    assert plain._constants == {} and set(routed._constants) == {ONE}
    products, weights = _left_weights(plain._step_graph)
    assert products > weights > 0, (products, weights)
    multiplies = [n for n in routed._step_graph.get_ordered_ops()
                  if n.get_type_name() == "Multiply" and n.input_value(1).get_names() == {ONE}]
    assert len(multiplies) == weights and _left_weights(routed._step_graph) == (0, 0)

    # Each step's every output agrees within fp32 rounding (multiplying by 1.0 is exact; the
    # rewritten products may run other fp32 kernels, which sum in another order).
    for step, (a, b) in enumerate(zip(_steps(plain, tokens), _steps(routed, tokens), strict=True)):
        for name in a:
            if a[name].dtype.kind == "f":
                np.testing.assert_allclose(b[name], a[name], rtol=1e-4, atol=1e-4, err_msg=f"step {step}: {name}")
            else:
                np.testing.assert_array_equal(b[name], a[name], err_msg=f"step {step}: {name}")

    # ...and the looped answers, through the solver, are the same answers.
    policy, limit = halting_and_limit(meta, f"fixed:{STEPS}", None)
    solved = [Solver(trained_export, meta, backend, policy, limit).solve(list(tokens)) for backend in (plain, routed)]
    for a, b in zip(*solved, strict=True):
        assert (a.steps, a.verified) == (b.steps, b.verified)
        np.testing.assert_array_equal(b.answer, a.answer)


def test_two_weights_that_share_a_friendly_name_each_keep_their_own_values() -> None:
    import openvino as ov
    from openvino import opset13 as ops

    rng = np.random.default_rng(0)
    first, second = (rng.standard_normal((3, 3)).astype(np.float32) for _ in range(2))
    x = rng.standard_normal((3, 2)).astype(np.float32)
    inputs = ops.parameter([3, 2], ov.Type.f32, name="x")
    left = [ops.constant(w) for w in (first, second)]
    for weight in left:  # OpenVINO does not promise friendly names unique; an imported graph can repeat one
        weight.set_friendly_name("weight")
    model = ov.Model([ops.matmul(left[1], ops.matmul(left[0], inputs, False, False), False, False)], [inputs])

    bound = route_left_weights(model, ov)
    assert _left_weights(model) == (0, 0)
    assert sum(n.get_type_name() == "Multiply" for n in model.get_ordered_ops()) == 2
    out = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})({"x": x, **bound})[0]
    np.testing.assert_allclose(out, second @ (first @ x), rtol=1e-5, atol=1e-6)
