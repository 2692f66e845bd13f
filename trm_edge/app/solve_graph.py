"""`trm-edge export --solve-graph`: write solve.onnx and hold it to the runtime's own answers.

The graph is built by the export stage (export/solve_graph.py) for the export's default halting
policy, as the runtime resolves it; here, on the export's validation puzzles (fp32), solve.onnx in
ONNX Runtime's CPU provider and in OpenVINO's CPU plugin (where it is installed; the export says
when its check was skipped) must give exactly the runtime's answers, steps and (where the graph
verifies) verified flags, run as one batch and puzzle by puzzle. A mismatch fails the export with the
numbers (this runs in the export's staging folder: the previous export stays as it was). solve.onnx
is made from fp32 exports only (half_precision_refused).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from trm_edge.contract.export_dir import read_metadata, write_metadata
from trm_edge.contract.validation_file import random_puzzles, read_validation_puzzles
from trm_edge.errors import ExportCheckFailed, TrmEdgeError
from trm_edge.export.solve_graph import SolveGraph, build_solve_graph, unverified_policy
from trm_edge.runtime.export_task import halting_and_limit
from trm_edge.runtime.solver import Solver
from trm_edge.tasks import get_codec

ONE_BY_ONE = 8  # validation puzzles also run alone (batch 1)
ENGINE_NAMES = {"onnxruntime": "onnxruntime CPU", "openvino": "openvino CPU"}


def half_precision_refused(precision: str) -> TrmEdgeError | None:
    """Why solve.onnx is not made from an export in `precision` (None for fp32, and for int8, whose
    folder is an fp32 export): it is for CPUs and browsers, whose ONNX runtimes run fp32 graphs (ONNX
    Runtime's CPU provider has no bf16 kernels, WASM no fp16 ones) and lower them themselves."""
    if precision in ("fp32", "int8"):
        return None
    return TrmEdgeError(f"--solve-graph (and --format web) takes an fp32 export, not {precision}: solve.onnx is for "
                        f"CPUs and browsers, whose ONNX runtimes run fp32 graphs; export fp32 with --solve-graph, and "
                        f"{precision} separately for a GPU")


def installed_engines() -> list[str]:
    """The engines solve.onnx is checked in: ONNX Runtime always (export validation needs it),
    OpenVINO where it is installed."""
    import importlib.util

    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        raise TrmEdgeError("solve.onnx is checked in ONNX Runtime: pip install 'trm-edge[cpu]'") from None
    try:
        has_openvino = importlib.util.find_spec("openvino") is not None
    except ValueError:  # a module set to None in sys.modules: treated as not installed
        has_openvino = False
    return ["onnxruntime", "openvino"] if has_openvino else ["onnxruntime"]


@dataclass
class GraphRun:
    answer: np.ndarray
    steps: np.ndarray
    verified: np.ndarray


class SolveGraphRunner:
    """solve.onnx loaded once in ONNX Runtime's CPU provider ('onnxruntime') or OpenVINO's CPU
    plugin ('openvino', fp32), then run on any batch of puzzles."""

    def __init__(self, path: Path, engine: str) -> None:
        self.engine = engine
        if engine == "onnxruntime":
            import onnxruntime

            self.session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        else:
            import openvino

            self.compiled = openvino.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})

    def __call__(self, tokens: np.ndarray, ids: np.ndarray | None = None) -> GraphRun:
        feeds: dict[str, Any] = {"tokens": np.ascontiguousarray(tokens, np.int32)}
        if ids is not None:
            feeds["puzzle_identifiers"] = np.ascontiguousarray(ids, np.int32)
        if self.engine == "onnxruntime":
            answer, steps, verified, _ = self.session.run(None, feeds)
        else:
            out = self.compiled(feeds)
            answer, steps, verified = (out[self.compiled.output(name)] for name in ("answer", "steps", "verified"))
        return GraphRun(np.asarray(answer), np.asarray(steps), np.asarray(verified, dtype=bool))


def write_solve_graph(export_dir: Path, console: Console) -> SolveGraph:
    """Build solve.onnx for the export's default policy, check it against the runtime, record it."""
    meta = read_metadata(export_dir)
    refused = half_precision_refused(meta.precision)
    if refused is not None:
        raise refused
    engines = installed_engines()
    policy, limit = halting_and_limit(meta, "auto", None)
    try:
        units = get_codec(meta.task, meta.task_options).exactly_once_units()
    except TrmEdgeError:  # a task without a codec: nothing to verify with
        units = None
    graph = build_solve_graph(export_dir, meta, policy, limit, units)
    tokens, ids, _ = read_validation_puzzles(export_dir, meta) or random_puzzles(meta)
    uses_ids = meta.model.uses_puzzle_identifiers
    # The runtime at fp32, halting as the graph does (a verified policy the graph cannot verify keeps its fallback).
    halt = policy if graph.verifies else unverified_policy(policy)
    solver = Solver.load(export_dir, backend="ort-cpu", precision="fp32", slots=len(tokens),
                         halt=halt.name or f"max:{limit}", max_steps=limit)
    results = solver.solve(list(zip(tokens, ids.tolist(), strict=True)))
    expected = GraphRun(np.stack([r.answer for r in results]), np.array([r.steps for r in results]),
                        np.array([bool(r.verified) for r in results]))
    problems = []
    for engine in engines:
        run = SolveGraphRunner(graph.path, engine)
        whole = run(tokens, ids if uses_ids else None)
        alone = [run(tokens[i : i + 1], ids[i : i + 1] if uses_ids else None)
                 for i in range(min(ONE_BY_ONE, len(tokens)))]
        for how, got, rows in (("as one batch", whole, slice(None)),
                               ("one by one", _stack(alone), slice(0, len(alone)))):
            problems += _differences(engine, how, got, expected, rows, graph.verifies)
    if problems:
        raise ExportCheckFailed(f"solve.onnx does not reproduce the runtime on the export's {len(tokens)} "
                                f"validation puzzles: {'; '.join(problems)}",
                                "Export without --solve-graph for the rest of the export")
    validation = {"puzzles": len(tokens), "one_by_one": min(ONE_BY_ONE, len(tokens)),
                  "engines": [ENGINE_NAMES[e] for e in engines], "precision": "fp32", "matched": True}
    write_metadata(export_dir, meta.with_solve({**graph.describe(), "validation": validation}))
    how = "verified in the graph" if graph.verifies else "not verified in the graph (verified is always false)"
    checked = " and ".join({"onnxruntime": "ONNX Runtime", "openvino": "OpenVINO"}[e] for e in engines)
    console.print(f"wrote {graph.path.name} (halting {graph.policy}, max {graph.max_steps} steps, {how}); on "
                  f"{len(tokens)} validation puzzles it gives the runtime's answers and steps in {checked}",
                  highlight=False)
    if "openvino" not in engines:
        console.print("note: OpenVINO's check of solve.onnx was skipped: OpenVINO is not installed (pip install "
                      "'trm-edge[openvino]' to check it there too)", markup=False, highlight=False)
    return graph


def _stack(runs: list[GraphRun]) -> GraphRun:
    return GraphRun(np.concatenate([r.answer for r in runs]), np.concatenate([r.steps for r in runs]),
                    np.concatenate([r.verified for r in runs]))


def _differences(engine: str, how: str, got: GraphRun, expected: GraphRun, rows: slice, verifies: bool) -> list[str]:
    out = []
    answers = int((got.answer != expected.answer[rows]).any(axis=1).sum())
    steps = int((got.steps != expected.steps[rows]).sum())
    verified = int((got.verified != expected.verified[rows]).sum()) if verifies else 0
    for what, count in (("answers", answers), ("steps", steps), ("verified flags", verified)):
        if count:
            out.append(f"{engine} {how}: {count} {what} differ")
    return out

