"""Programs for a phone runtime beside an ONNX export: the same init and step, converted from the
PyTorch model by that runtime's own tools, then validated against PyTorch as the ONNX step is.

    add_programs(export_dir, checkpoint, "executorch", width=64)  # init.pte, step.pte (XNNPACK)
    add_programs(export_dir, checkpoint, "litert", width=16)      # init.tflite, step.tflite (exactly 16 rows)

Each format's writer lives in its own module (export/executorch_program.py, export/litert_program.py)
and turns the two torch modules (export/graphs.py) into files. What one cannot lower becomes a
TrmEdgeError that names the op and the format (`lowering_error`), never the converter's traceback.
"""

from __future__ import annotations

import importlib
import re
import time
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from trm_edge.checkpoint import load_checkpoint
from trm_edge.contract.export_dir import read_metadata, write_metadata
from trm_edge.contract.validation_file import random_puzzles, read_validation_puzzles
from trm_edge.errors import ExportCheckFailed, TrmEdgeError
from trm_edge.export.files import PROGRAM_FILES
from trm_edge.export.graphs import InitGraph, StepGraph
from trm_edge.export.validate import ValidationReport, validate_export
from trm_edge.int8_model import float_copy
from trm_edge.layers import exporting_programs
from trm_edge.model import RecursiveReasoningModel
from trm_edge.programs import (
    CONVERTER_INSTALL,
    PROGRAM_FORMATS,
    RUNTIME_PACKAGES,
    installed_version,
    open_runner,
    quiet_native_logs,
)

# The converter packages each format needs at export time, and whose versions the record keeps.
CONVERTERS = {"executorch": ("executorch",), "litert": ("litert-torch", "ai-edge-litert")}
# The module whose import says the converter is installed.
CONVERTER_MODULES = {"executorch": "executorch.exir", "litert": "litert_torch"}
FILES = PROGRAM_FILES


def example_inputs(model: RecursiveReasoningModel, rows: int) -> dict[str, tuple[torch.Tensor, ...]]:
    """Inputs of `rows` rows for tracing the init and step modules (the step's from the init's output)."""
    c = model.config
    tokens = torch.ones(rows, c.seq_len, dtype=torch.int32)
    ids = torch.zeros(rows, dtype=torch.int32)
    init = (tokens, ids) if c.puzzle_emb_ndim > 0 else (tokens,)
    with torch.no_grad():
        x = model.embed(tokens, ids if c.puzzle_emb_ndim > 0 else None)
    state = model.initial_state(rows)
    # Contiguous copies: the initial state is H_init broadcast over the batch (stride 0), which
    # would tie the traced batch to the example's.
    z_H, z_L = state.z_H.detach().contiguous(), state.z_L.detach().contiguous()
    return {"init": init, "step": (x, z_H, z_L, torch.ones(rows, dtype=torch.uint8))}


class ByteResetStep(StepGraph):
    """The step with `reset` as uint8 (nonzero: start the row afresh), where step.onnx takes bool:
    ExecuTorch's Java/Kotlin bindings make uint8 tensors but no bool ones (docs/mobile.md)."""

    def forward(self, x_emb: torch.Tensor, z_H: torch.Tensor, z_L: torch.Tensor,
                reset: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return super().forward(x_emb, z_H, z_L, reset.to(torch.bool))


def modules(model: RecursiveReasoningModel) -> dict[str, torch.nn.Module]:
    return {"init": InitGraph(model).eval(), "step": ByteResetStep(model).eval()}


def lowering_error(format: str, model: RecursiveReasoningModel, exc: Exception) -> TrmEdgeError:
    """A converter's failure as one line: the op it names (where it names one), the format, the model."""
    text = str(exc)
    # torch.export names an ATen op; the LiteRT converter the TFLite op it failed to legalize.
    op = re.search(r"\b(aten[._:]+[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)?|tfl\.[a-z0-9_]+)", text)
    first_line = text.splitlines()[0][:160] if text else ""
    what = f"the op {op.group(1)}" if op else f"this model ({type(exc).__name__}: {first_line})"
    return TrmEdgeError(
        f"{format} cannot lower {what} of this {model.config.arch} model (docs/mobile.md lists the models each "
        f"format takes): export --format onnx and run it with ONNX Runtime or OpenVINO instead")


def add_programs(export_dir: Path, checkpoint: Path, format: str, width: int, console: Console,
                 validate: bool = True, validate_steps: int = 4) -> dict[str, Any]:
    """Write `format`'s programs into the (validated, float32) ONNX export `export_dir`, validate them
    and record them in trm_edge.json; returns the record."""
    if format not in PROGRAM_FORMATS:
        raise TrmEdgeError(f"program format {format!r} is not one of {', '.join(PROGRAM_FORMATS)}")
    if width < 1:
        option = "--batch" if format == "litert" else "--max-batch"  # LiteRT's batch is fixed, ExecuTorch's a bound
        raise TrmEdgeError(f"{option} must be at least 1, got {width}")
    meta = read_metadata(export_dir)
    if meta.precision != "fp32":
        raise TrmEdgeError(f"--format {format} writes float32 programs (XNNPACK runs them); this export is "
                           f"{meta.precision}: use --precision fp32")
    model = float_copy(load_checkpoint(checkpoint).float()).eval()
    writer = _writer(format)
    started = time.perf_counter()
    with console.status(f"converting the init and step to {format} ({', '.join(FILES[format])})"), \
            exporting_programs():
        try:
            writer(model, modules(model), example_inputs(model, min(2, width)), width,
                   [export_dir / name for name in FILES[format]])
        except TrmEdgeError:
            raise
        except Exception as exc:  # the converter's own failure: one clear line instead
            raise lowering_error(format, model, exc) from None
    sizes = ", ".join(f"{n} {(export_dir / n).stat().st_size / 1e6:.1f} MB" for n in FILES[format])
    console.print(f"wrote {sizes} ({time.perf_counter() - started:.0f} s)")
    # The converter's versions, and the runtime's the programs are validated on: the loader checks it (programs.py).
    software = {p: installed_version(p) for p in dict.fromkeys((*CONVERTERS[format], RUNTIME_PACKAGES[format]))}
    record: dict[str, Any] = {"init": FILES[format][0], "step": FILES[format][1], "width": width, "reset": "uint8",
                              "software": software}
    if validate:
        report = validate_programs(model, export_dir, format, record, meta, validate_steps, console)
        record["validation"] = report.to_dict()
        if not report.passed:  # the whole export is built aside: kept as NAME.failed-validation
            raise ExportCheckFailed(f"{format} validation failed: {report.failures()}",
                                    f"The {format} programs do not reproduce PyTorch (export --format onnx for the "
                                    "ONNX export alone)")
    write_metadata(export_dir, meta.with_program(format, record))
    return record


def validate_programs(model: RecursiveReasoningModel, export_dir: Path, format: str, record: dict[str, Any],
                      meta: Any, steps: int, console: Console) -> ValidationReport:
    """The programs against float32 PyTorch on the puzzles the ONNX export was validated on, by the
    fp32 bars (export/validate.py)."""
    from trm_edge.export.exporter import validation_table

    puzzles = read_validation_puzzles(export_dir, meta) or random_puzzles(meta)
    tokens, ids, real = puzzles
    runner = open_runner(format, export_dir, record, meta.model.uses_puzzle_identifiers)
    what = f"{len(tokens)} {'puzzles' if real else 'random token sequences'} the ONNX export was validated on"
    with console.status(f"validating the {format} programs against PyTorch"):
        report = validate_export(model, export_dir, "fp32", steps=steps, tokens=tokens, puzzle_identifiers=ids,
                                 real_puzzles=real, puzzles_description=what, runner=runner)
    console.print(validation_table(report))
    return report


def _writer(format: str) -> Any:
    require_converter(format)
    if format == "executorch":
        from trm_edge.export.executorch_program import write_programs
    else:
        from trm_edge.export.litert_program import write_programs
    return write_programs


def require_converter(format: str) -> None:
    """A clear error naming the install where `format`'s converter is missing."""
    try:
        with quiet_native_logs():
            importlib.import_module(CONVERTER_MODULES[format])
    except ImportError:
        raise TrmEdgeError(f"--format {format} needs its converter: {CONVERTER_INSTALL[format]}") from None

