"""solve.onnx: the whole solve, loop and halting included, as one ONNX graph any ONNX runtime runs.

    tokens (B, seq_len) int32 [, puzzle_identifiers (B,) int32]
        -> answer (B, seq_len) int32, steps (B,) int32, verified (B,) bool, q_halt (B,) float32

The export's own graphs are composed: init.onnx's nodes compute the input embedding once, and
step.onnx's nodes are the body of an ONNX `Loop` (their weights stored once, in the outer graph,
which the body reads by name). The loop carries the state, each row's answer, halting logit,
steps, unchanged-answer count and verdict; a row that halts freezes (its values are carried, not
recomputed), and the loop ends when every row has halted or at max steps. Halting is the export's
default policy as far as a graph can decide it: max steps, fixed:N, the model's rule,
threshold:P, stable:K, max:N, and `verified` where the task's rule fits a graph (each unit of
cells holds each symbol exactly once, givens kept: `Codec.exactly_once_units`, Sudoku). A task
whose rule does not (a maze's shortest path) halts by the policy's fallback and reports
verified = false; the app checks such answers itself (or runs step.onnx with the runtime).

Built with ONNX's own helpers at the export's opset; only ops ONNX Runtime's CPU provider,
onnxruntime-web (WASM) and OpenVINO run (no bool Where: And/Or instead).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from trm_edge.contract.halting_policy import HaltPolicy
from trm_edge.contract.metadata import ExportMetadata
from trm_edge.errors import TrmEdgeError
from trm_edge.export.files import SOLVE_FILE

INT32, INT64, FLOAT, BOOL = TensorProto.INT32, TensorProto.INT64, TensorProto.FLOAT, TensorProto.BOOL
STATE_DTYPES = {"float32": TensorProto.FLOAT, "float16": TensorProto.FLOAT16, "bfloat16": TensorProto.BFLOAT16}


@dataclass(frozen=True)
class SolveGraph:
    path: Path
    policy: str  # what the graph halts by (the export's default, as far as a graph decides it)
    max_steps: int
    verifies: bool  # whether `verified` is computed in the graph (else always false)

    def describe(self) -> dict[str, Any]:
        return {"file": self.path.name, "halting": self.policy, "max_steps": self.max_steps,
                "verifies": self.verifies}


class _Nodes:
    """A list of nodes with fresh names, and constants as initializers of the outer graph."""

    def __init__(self, prefix: str, constants: list[onnx.TensorProto]) -> None:
        self.prefix, self.nodes, self.constants, self._n = prefix, [], constants, 0

    def name(self, hint: str) -> str:
        self._n += 1
        return f"{self.prefix}{hint}_{self._n}"

    def add(self, op: str, inputs: list[str], hint: str = "", **attrs: Any) -> str:
        out = self.name(hint or op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def const(self, value: Any, dtype: Any, hint: str = "c") -> str:
        name = self.name(hint)
        self.constants.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name


def _reduce_min(b: _Nodes, x: str, axes: list[int], opset: int) -> str:
    """ReduceMin over `axes`, not keeping them (the axes moved from an attribute to an input in opset 18)."""
    if opset >= 18:
        return b.add("ReduceMin", [x, b.const(axes, np.int64, "axes")], keepdims=0)
    return b.add("ReduceMin", [x], axes=axes, keepdims=0)


def _all(b: _Nodes, condition: str, axes: list[int], opset: int) -> str:
    """Whether `condition` (bool) holds along `axes`: ReduceMin of its int32 cast equals 1."""
    as_int = b.add("Cast", [condition], to=INT32)
    return b.add("Equal", [_reduce_min(b, as_int, axes, opset), b.const(1, np.int32)])


def _verifier(b: _Nodes, tokens: str, answer: str, units: np.ndarray, symbols: np.ndarray, opset: int) -> str:
    """(B,) bool: every unit holds each symbol exactly once and every given is kept. `units` is
    (U, seq_len) cell membership, `symbols` the answer tokens a cell may hold."""
    symbol_row = b.const(symbols.astype(np.int32), np.int32, "symbols")
    onehot = b.add("Cast", [b.add("Equal", [b.add("Unsqueeze", [answer, b.const([-1], np.int64)]), symbol_row])],
                   to=FLOAT)
    counts = b.add("MatMul", [b.const(units.astype(np.float32), np.float32, "units"), onehot])  # (B, U, T)
    units_ok = _all(b, b.add("Equal", [counts, b.const(1.0, np.float32)]), [1, 2], opset)
    given_hits = b.add("Cast", [b.add("Equal", [b.add("Unsqueeze", [tokens, b.const([-1], np.int64)]), symbol_row])],
                       to=INT32)
    max_axes = {"axes": [2]} if opset < 18 else {}
    max_inputs = [given_hits] if opset < 18 else [given_hits, b.const([2], np.int64, "axes")]
    given = b.add("Equal", [b.add("ReduceMax", max_inputs, keepdims=0, **max_axes), b.const(1, np.int32)])
    kept = _all(b, b.add("Or", [b.add("Not", [given]), b.add("Equal", [answer, tokens])]), [1], opset)
    return b.add("And", [units_ok, kept], "verified_now")


def _halts(b: _Nodes, policy: HaltPolicy, rule: str, steps: str, unchanged: str, q_halt: str, q_continue: str,
           verified: str | None, max_steps: int) -> str:
    """(B,) bool: which rows halt after this step (runtime/halting.decide, as graph ops)."""
    done = b.add("GreaterOrEqual", [steps, b.const(max_steps, np.int32)])
    if policy.verified and verified is not None:
        done = b.add("Or", [done, verified])
    if policy.fixed_steps is not None:
        return b.add("Or", [done, b.add("GreaterOrEqual", [steps, b.const(policy.fixed_steps, np.int32)])])
    score = q_halt if rule == "q_halt>0" else b.add("Sub", [q_halt, q_continue])
    if policy.model_rule:
        return b.add("Or", [done, b.add("Greater", [score, b.const(0.0, np.float32)])])
    if policy.threshold is not None:
        probability = b.add("Sigmoid", [score])
        done = b.add("Or", [done, b.add("GreaterOrEqual", [probability, b.const(policy.threshold, np.float32)])])
    if policy.stable_steps is not None:
        done = b.add("Or", [done, b.add("GreaterOrEqual", [unchanged, b.const(policy.stable_steps, np.int32)])])
    if policy.step_cap is not None:
        done = b.add("Or", [done, b.add("GreaterOrEqual", [steps, b.const(policy.step_cap, np.int32)])])
    return done


def _renamed(graph: onnx.GraphProto, prefix: str, keep: dict[str, str]) -> tuple[list[onnx.NodeProto],
                                                                                 list[onnx.TensorProto]]:
    """The graph's nodes and initializers with every value name prefixed, except `keep` (old -> new)."""

    def new(name: str) -> str:
        return keep.get(name, f"{prefix}{name}") if name else name

    nodes = []
    for node in graph.node:
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        copy.name = f"{prefix}{node.name}"
        copy.input[:] = [new(n) for n in node.input]
        copy.output[:] = [new(n) for n in node.output]
        nodes.append(copy)
    initializers = []
    for tensor in graph.initializer:
        copy = onnx.TensorProto()
        copy.CopyFrom(tensor)
        copy.name = new(tensor.name)
        initializers.append(copy)
    return nodes, initializers


def build_solve_graph(export_dir: Path, meta: ExportMetadata, policy: HaltPolicy, max_steps: int,
                      units: tuple[np.ndarray, np.ndarray] | None) -> SolveGraph:
    """Write solve.onnx into `export_dir` for halting `policy` bounded by `max_steps`; `units`
    ((U, seq_len) cells per unit, symbol tokens) where the task verifies in the graph."""
    if not meta.dynamic_batch:
        raise TrmEdgeError("--solve-graph needs a dynamic-batch export (leave out --static/--batch)")
    if max_steps < 1:
        raise TrmEdgeError(f"max steps must be at least 1, got {max_steps}")
    init = onnx.load(str(export_dir / meta.graphs["init"].file))
    step = onnx.load(str(export_dir / meta.graphs["step"].file))
    opset = next(o.version for o in step.opset_import if o.domain in ("", "ai.onnx"))
    model, state_dtype = meta.model, STATE_DTYPES[meta.state_dtype]
    seq, uses_ids = model.seq_len, model.uses_puzzle_identifiers
    constants: list[onnx.TensorProto] = []

    # The outer graph: the input embedding, the initial carried values, the loop, the outputs.
    outer = _Nodes("solve/", constants)
    init_nodes, init_weights = _renamed(init.graph, "init/", {"tokens": "tokens", "puzzle_identifiers":
                                                              "puzzle_identifiers", "x_emb": "x_emb"})
    step_nodes, step_weights = _renamed(step.graph, "step/", {"x_emb": "x_emb", "z_H": "body/z_H", "z_L": "body/z_L",
                                                              "reset": "body/reset"})
    batch = outer.add("Gather", [outer.add("Shape", ["tokens"]), outer.const(0, np.int64)], "batch")
    batch_1d = outer.add("Unsqueeze", [batch, outer.const([0], np.int64)], "batch_1d")
    state_shape = outer.add("Concat", [batch_1d, outer.const([model.state_len, model.hidden_size], np.int64)], axis=0)
    zero_state = helper.make_tensor("zero", state_dtype, [1], [0])
    state0 = outer.add("ConstantOfShape", [state_shape], "state0", value=zero_state)
    answer0 = outer.add("ConstantOfShape", [outer.add("Shape", ["tokens"])], "answer0",
                        value=helper.make_tensor("zero", INT32, [1], [0]))
    zeros_b = outer.add("ConstantOfShape", [batch_1d], "zeros_b", value=helper.make_tensor("zero", INT32, [1], [0]))
    q0 = outer.add("Cast", [zeros_b], to=FLOAT)
    false_b = outer.add("Cast", [zeros_b], to=BOOL)

    # The loop body: one step for every row, halting decided, halted rows frozen.
    body = _Nodes("body/", constants)
    b_in = ["body/iteration", "body/condition", "body/z_H", "body/z_L", "body/answer", "body/q_halt", "body/done",
            "body/steps", "body/unchanged", "body/verified"]
    body.nodes.append(helper.make_node("Equal", [b_in[0], body.const(0, np.int64)], ["body/first_iteration"]))
    body.nodes.append(helper.make_node("Expand", ["body/first_iteration", batch_1d], ["body/reset"]))
    body.nodes.extend(step_nodes)
    answer_new, q_new, qc_new = "step/answer", "step/q_halt", "step/q_continue"
    active = body.add("Not", ["body/done"], "active")
    steps = body.add("Add", ["body/steps", body.add("Cast", [active], to=INT32)], "steps")
    first_step = body.add("Equal", [steps, body.const(1, np.int32)], "first_step")
    same = _all(body, body.add("Equal", [answer_new, "body/answer"]), [1], opset)
    counted = body.add("And", [same, body.add("Not", [first_step])])
    unchanged_new = body.add("Mul", [body.add("Add", ["body/unchanged", body.const(1, np.int32)]),
                                     body.add("Cast", [counted], to=INT32)], "unchanged_new")
    verified_now = _verifier(body, "tokens", answer_new, *units, opset) if units is not None else None
    halt = _halts(body, policy, meta.halting.rule, steps, unchanged_new, q_new, qc_new, verified_now, max_steps)
    done = body.add("Or", ["body/done", body.add("And", [active, halt])], "done")
    rows3 = body.add("Unsqueeze", [active, body.const([1, 2], np.int64)])
    rows2 = body.add("Unsqueeze", [active, body.const([1], np.int64)])
    keep = {  # a halted row keeps what it had; a running one takes this step's
        "z_H": body.add("Where", [rows3, "step/z_H_next", "body/z_H"], "z_H_out"),
        "z_L": body.add("Where", [rows3, "step/z_L_next", "body/z_L"], "z_L_out"),
        "answer": body.add("Where", [rows2, answer_new, "body/answer"], "answer_out"),
        "q_halt": body.add("Where", [active, q_new, "body/q_halt"], "q_halt_out"),
        "unchanged": body.add("Where", [active, unchanged_new, "body/unchanged"], "unchanged_out"),
    }
    # Through an Identity: OpenVINO's frontend miscounts a body input passed straight out as an output.
    verified = body.add("Identity", ["body/verified"], "verified_out")
    if verified_now is not None:  # no bool Where on ORT's CPU provider: (active and now) or (halted and before)
        verified = body.add("Or", [body.add("And", [active, verified_now]),
                                   body.add("And", ["body/done", "body/verified"])], "verified_out")
    go_on = body.add("Not", [_all(body, done, [0], opset)], "go_on")
    state_type = helper.make_tensor_type_proto(state_dtype, ["batch", model.state_len, model.hidden_size])
    body_graph = helper.make_graph(
        body.nodes, "solve_step",
        [helper.make_value_info(b_in[0], helper.make_tensor_type_proto(INT64, [])),
         helper.make_value_info(b_in[1], helper.make_tensor_type_proto(BOOL, [])),
         helper.make_value_info(b_in[2], state_type), helper.make_value_info(b_in[3], state_type),
         helper.make_tensor_value_info(b_in[4], INT32, ["batch", seq]),
         helper.make_tensor_value_info(b_in[5], FLOAT, ["batch"]),
         helper.make_tensor_value_info(b_in[6], BOOL, ["batch"]),
         helper.make_tensor_value_info(b_in[7], INT32, ["batch"]),
         helper.make_tensor_value_info(b_in[8], INT32, ["batch"]),
         helper.make_tensor_value_info(b_in[9], BOOL, ["batch"])],
        [helper.make_tensor_value_info(go_on, BOOL, []),
         helper.make_value_info(keep["z_H"], state_type), helper.make_value_info(keep["z_L"], state_type),
         helper.make_tensor_value_info(keep["answer"], INT32, ["batch", seq]),
         helper.make_tensor_value_info(keep["q_halt"], FLOAT, ["batch"]),
         helper.make_tensor_value_info(done, BOOL, ["batch"]),
         helper.make_tensor_value_info(steps, INT32, ["batch"]),
         helper.make_tensor_value_info(keep["unchanged"], INT32, ["batch"]),
         helper.make_tensor_value_info(verified, BOOL, ["batch"])],
    )
    loop_out = ["z_H_final", "z_L_final", "answer", "q_halt", "done_final", "steps", "unchanged_final", "verified"]
    outer.nodes.append(helper.make_node(
        "Loop", [outer.const(max_steps, np.int64, "max_steps"), outer.const(True, np.bool_, "true"), state0, state0,
                 answer0, q0, false_b, zeros_b, zeros_b, false_b], loop_out, name="solve/loop", body=body_graph))
    inputs = [helper.make_tensor_value_info("tokens", INT32, ["batch", seq])]
    if uses_ids:
        inputs.append(helper.make_tensor_value_info("puzzle_identifiers", INT32, ["batch"]))
    graph = helper.make_graph(
        [*init_nodes, *outer.nodes], "trm_edge_solve", inputs,
        [helper.make_tensor_value_info("answer", INT32, ["batch", seq]),
         helper.make_tensor_value_info("steps", INT32, ["batch"]),
         helper.make_tensor_value_info("verified", BOOL, ["batch"]),
         helper.make_tensor_value_info("q_halt", FLOAT, ["batch"])],
        initializer=[*init_weights, *step_weights, *constants],
    )
    solve = helper.make_model(graph, opset_imports=list(step.opset_import), producer_name="trm-edge")
    solve.ir_version = step.ir_version
    onnx.checker.check_model(solve)
    path = export_dir / SOLVE_FILE
    onnx.save(solve, str(path))
    return SolveGraph(path, policy_in_graph(policy, units is not None), max_steps, units is not None)


def policy_in_graph(policy: HaltPolicy, verifies: bool) -> str:
    """The policy the graph applies: a verified policy without an in-graph rule keeps its fallback."""
    if policy.verified and not verifies:
        fallback = HaltPolicy(threshold=policy.threshold, stable_steps=policy.stable_steps, step_cap=policy.step_cap)
        return fallback.name if fallback.name else "max steps"
    return policy.name


def unverified_policy(policy: HaltPolicy) -> HaltPolicy:
    """`policy` without its verified part (what a graph that cannot verify halts by)."""
    if not policy.verified:
        return policy
    return HaltPolicy(threshold=policy.threshold, stable_steps=policy.stable_steps, step_cap=policy.step_cap)
