"""`export --precision int8`: the int8 step (step_int8.onnx) beside the float export's graphs.

The export folder keeps the float32 init and step (the int8 step's reference, and what the runtime
falls back to); step_int8.onnx is the same step with QuantizeLinear/DequantizeLinear around every
reasoning product (export/qdq.py), its scales the checkpoint's own where it was trained
quantization-aware (`train.quantize: int8`), else calibrated here on the validation puzzles
(post-training quantization, which loses accuracy over the recursion: docs/int8.md). The runtime
runs it where `--precision int8` asks, or where auto measures it faster and its check passes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from trm_edge.errors import TrmEdgeError
from trm_edge.export.files import INT8_STEP
from trm_edge.export.graph_tools import check_graph, finalize_graph
from trm_edge.export.onnx_export import export_graphs
from trm_edge.export.qdq import check_qdq, drop_casts_after_dequantize, fold_weight_quantization
from trm_edge.export.validate import ValidationReport, validate_export
from trm_edge.int8_model import calibrate, int8_copy
from trm_edge.model import RecursiveReasoningModel
from trm_edge.quantization import uncalibrated


def int8_model(model: RecursiveReasoningModel, quantized: RecursiveReasoningModel | None, tokens: np.ndarray,
               puzzle_identifiers: np.ndarray) -> tuple[RecursiveReasoningModel, str]:
    """The fake-quantized model the int8 step is exported from, and where its scales come from."""
    if quantized is not None:
        if uncalibrated(quantized):
            raise TrmEdgeError("this int8 checkpoint has products without an input scale: it was saved before "
                               "calibration; train it with train.quantize: int8, or export its float weights")
        return quantized.float().eval(), "quantization-aware training (the checkpoint's scales)"
    made = int8_copy(model.float().eval())
    ids = torch.from_numpy(puzzle_identifiers) if model.config.puzzle_emb_ndim > 0 else None
    calibrate(made, torch.from_numpy(np.ascontiguousarray(tokens, dtype=np.int32)), ids)
    return made, f"post-training calibration on {len(tokens)} validation puzzles"


def write_int8_step(quantized: RecursiveReasoningModel, out: Path, opset: int, batch: int | None) -> dict[str, Any]:
    """Export the int8 step into `out` and hold it to TensorRT's QDQ rules; its graph spec."""
    specs = export_graphs(quantized, out, opset, batch, step_file=INT8_STEP, with_init=False)
    path = out / INT8_STEP
    graph = onnx.load(str(path))
    fold_weight_quantization(graph)
    drop_casts_after_dequantize(graph)
    onnx.save(graph, str(path))
    spec = specs["step"]
    finalize_graph(path, {t.name: t.shape for t in spec.inputs + spec.outputs})
    check_graph(path, dynamic_batch=batch is None)
    products = check_qdq(onnx.load(str(path)), INT8_STEP)
    return {"file": INT8_STEP, "products": products, "bytes": path.stat().st_size}


def validate_int8(quantized: RecursiveReasoningModel, model: RecursiveReasoningModel, out: Path, steps: int,
                  tokens: np.ndarray, puzzle_identifiers: np.ndarray, real: bool, description: str) -> ValidationReport:
    """The int8 graph against its PyTorch simulation (same rounding) and against the float model."""
    return validate_export(quantized, out, "int8", steps=steps, tokens=tokens, puzzle_identifiers=puzzle_identifiers,
                           real_puzzles=real, puzzles_description=description, step_file=INT8_STEP,
                           float_model=model)
