"""Every precision trm-edge knows, in one table: what an export can be made in, what a backend may
lower an fp32 step to, the int8 step, and how each is named to the libraries that run it.

Read by the export (which graphs it can write), the export directory's contract (what
trm_edge.json may say), the runtime's choice (the precision `--backend BACKEND:PRECISION` takes and auto weighs) and the
backends (OpenVINO's inference precision hints)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Precision:
    name: str
    graph: bool  # an export's graphs can be made in it (their dtypes): fp32, fp16, bf16
    lowered: bool  # a backend may lower an fp32 step to it inside its compiled model (OpenVINO)
    dtype: str  # the graphs' float dtype (torch / numpy / ONNX name; int8 steps keep float32 edges)
    openvino_hint: str  # OpenVINO's INFERENCE_PRECISION_HINT for a step run at it


TABLE: dict[str, Precision] = {p.name: p for p in (
    Precision("fp32", graph=True, lowered=False, dtype="float32", openvino_hint="f32"),
    Precision("bf16", graph=True, lowered=True, dtype="bfloat16", openvino_hint="bf16"),
    Precision("fp16", graph=True, lowered=True, dtype="float16", openvino_hint="f16"),
    # The export's int8 step: QDQ around the reasoning products of an fp32 graph.
    Precision("int8", graph=False, lowered=False, dtype="float32", openvino_hint="f32"),
)}

GRAPH_PRECISIONS = tuple(p.name for p in TABLE.values() if p.graph)  # what trm_edge.json's precision may be
EXPORT_PRECISIONS = tuple(TABLE)  # what `export --precision` takes (int8: the fp32 graphs and step_int8.onnx)
LOWERED = tuple(p.name for p in TABLE.values() if p.lowered)
RUNTIME_PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")  # the runtime's precisions (auto: measured)
