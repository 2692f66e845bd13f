"""The ONNX export every format starts from: checkpoint -> export directory (init.onnx, step.onnx,
trm_edge.json).

Build the step modules in the requested precision, write the graphs, check them, validate them
against PyTorch, write the metadata. Engines and Triton repositories are made from the result
(`trm_edge.export.formats`, the `trm_edge.export.export` users call).

An export directory is replaced whole or not at all (`replacing_export`): everything is built in a
hidden staging folder beside it and swapped in only when all of it passed; a build that failed its
validation or a later check (programs, solve.onnx, an engine, the calibration) is kept as
NAME.failed-validation, marked failed, and NAME keeps the previous export byte for byte.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from rich.console import Console

from trm_edge.atomic import atomic_folder, move_folder
from trm_edge.checkpoint import file_sha256, load_checkpoint
from trm_edge.contract.export_dir import METADATA_FILE, read_metadata, write_metadata
from trm_edge.contract.metadata import ExportMetadata
from trm_edge.contract.validation_file import write_validation_puzzles
from trm_edge.errors import ExportCheckFailed, TrmEdgeError
from trm_edge.export.files import INIT_GRAPH, STEP_GRAPH
from trm_edge.export.graph_tools import check_graph, finalize_graph
from trm_edge.export.graphs import cast_for_export
from trm_edge.export.int8_export import int8_model, validate_int8, write_int8_step
from trm_edge.export.metadata import build_metadata
from trm_edge.export.onnx_export import DEFAULT_OPSET, check_opset, export_graphs
from trm_edge.export.validate import ValidationReport, failure_message, validate_export
from trm_edge.export.validation_puzzles import choose_validation_puzzles, random_validation_notice
from trm_edge.fault_points import fault_point
from trm_edge.int8_model import float_copy
from trm_edge.precisions import EXPORT_PRECISIONS


@dataclass
class ExportResult:
    directory: Path
    metadata: ExportMetadata
    validation: ValidationReport | None
    ops: dict[str, list[str]] = field(default_factory=dict)


FAILED_SUFFIX = ".failed-validation"
# int8: the float32 graphs plus step_int8.onnx (export/int8_export.py).


class ValidationFailed(ExportCheckFailed):
    """A build whose graphs do not reproduce PyTorch (`replacing_export` keeps it aside); its metadata
    already says the validation failed."""

    def __init__(self, report: ValidationReport) -> None:
        self.report = report
        super().__init__(failure_message(report))

    def message(self, kept_at: Path | None = None, unchanged: Path | None = None) -> str:
        return failure_message(self.report, kept_at, unchanged)


def default_output_dir(checkpoint: Path, precision: str) -> Path:
    return checkpoint.with_name(f"{checkpoint.stem}_{precision}_export")


@contextlib.contextmanager
def replacing_export(out: Path) -> Iterator[Path]:
    """`with replacing_export(out) as staging: build(staging)`: `out` becomes the new export only when
    the whole block passed; an existing folder is replaced only if it is an export (has trm_edge.json).
    A failed validation or a later check (programs, solve.onnx, an engine, the calibration: an
    ExportCheckFailed) keeps the build as OUT.failed-validation (replacing an older one), its
    metadata marked failed."""
    try:
        existed = (out / METADATA_FILE).is_file()
    except OSError:  # a folder the user cannot enter: atomic_folder says so in one line
        existed = False
    with atomic_folder(out, marker=METADATA_FILE) as staging:
        try:
            yield staging
        except ExportCheckFailed as failed:
            # Beside the folder the staging was built beside: where OUT is a link to another place,
            # beside the link the move could cross file systems (EXDEV) and lose this message.
            target = Path(os.path.realpath(out))
            kept = target.with_name(target.name + FAILED_SUFFIX)
            if not isinstance(failed, ValidationFailed):  # its metadata says it passed: no longer
                _mark_failed(staging, failed)
            move_folder(staging, kept, marker=METADATA_FILE)
            raise TrmEdgeError(failed.message(kept, out if existed else None)) from None


def _mark_failed(build: Path, failed: ExportCheckFailed) -> None:
    """Record in the build's metadata that a check failed, so the runtime refuses it; a build that
    cannot be marked is not kept (the staging folder goes)."""
    try:
        meta = read_metadata(build, allow_failed_validation=True)
        validation = {**(meta.validation or {}), "passed": False, "failed": failed.what}
        write_metadata(build, replace(meta, validation=validation))
    except (TrmEdgeError, OSError):
        raise TrmEdgeError(failed.message()) from None


def export_onnx(checkpoint: str | Path, output: str | Path | None = None, precision: str = "fp32",
                **options: Any) -> ExportResult:
    """Export a trm-edge checkpoint to `output` (replaced whole or not at all); `options` as
    `build_onnx_export` takes them. Raises TrmEdgeError on bad input or failed validation."""
    out = Path(output) if output is not None else default_output_dir(Path(checkpoint), precision)
    with replacing_export(out) as staging:
        result = build_onnx_export(checkpoint, staging, precision, **options)
    return replace(result, directory=out)


def build_onnx_export(
    checkpoint: str | Path,
    out: Path,
    precision: str = "fp32",
    opset: int = DEFAULT_OPSET,
    batch: int | None = None,
    validate: bool = True,
    atol: float | None = None,
    validate_steps: int = 4,
    tokens: Any = None,
    puzzle_identifiers: Any = None,
    console: Console | None = None,
    validation_name: str = "the given puzzles",
) -> ExportResult:
    """Write the export into the folder `out` (a staging folder: `replacing_export` swaps it in);
    raises TrmEdgeError on bad input, ValidationFailed when the graphs do not reproduce PyTorch.

    Validation runs on `tokens` when given, else on real puzzles the export finds or makes
    (export/validation_puzzles.py), random tokens only when there are none."""
    console = console or Console(quiet=True)
    checkpoint = Path(checkpoint)
    if precision not in EXPORT_PRECISIONS:
        raise TrmEdgeError(f"precision {precision!r} is not one of {', '.join(EXPORT_PRECISIONS)}")
    check_opset(opset)
    if batch is not None and batch < 1:
        raise TrmEdgeError(f"--batch must be at least 1, got {batch}")
    if validate and validate_steps < 1:
        raise TrmEdgeError(f"--validate-steps must be at least 1, got {validate_steps}")
    loaded = load_checkpoint(checkpoint).float()
    # A quantization-aware checkpoint's float twin makes the float graphs; its own rounding the int8 step.
    quantized = loaded if loaded.config.quantize == "int8" else None
    model = float_copy(loaded)
    graph_precision = "fp32" if precision == "int8" else precision
    out.mkdir(parents=True, exist_ok=True)

    with console.status(f"exporting {checkpoint.name} to ONNX ({graph_precision}, opset {opset})"):
        graphs = export_graphs(cast_for_export(model, graph_precision), out, opset, batch)
        ops = {}
        for name, spec in graphs.items():
            path = out / spec.file
            finalize_graph(path, {t.name: t.shape for t in spec.inputs + spec.outputs})
            ops[name] = check_graph(path, dynamic_batch=batch is None)
    step_bytes = (out / STEP_GRAPH).stat().st_size
    console.print(
        f"wrote {INIT_GRAPH}, {STEP_GRAPH} ({step_bytes / 1e6:.1f} MB, {model.num_parameters():,} parameters, "
        f"{len(onnx.load(str(out / STEP_GRAPH)).graph.node):,} nodes)"
    )

    report = int8_report = None
    int8: dict[str, Any] | None = None
    if validate or precision == "int8":
        puzzles = choose_validation_puzzles(model.config, getattr(model, "info", {}), tokens, puzzle_identifiers,
                                            batch=batch or 4, given_name=validation_name)
        if batch is not None and len(puzzles.tokens) != batch:  # a fixed-batch graph runs exactly `batch` rows
            rows = np.resize(np.arange(len(puzzles.tokens)), batch)
            puzzles.tokens, puzzles.puzzle_identifiers = puzzles.tokens[rows], puzzles.puzzle_identifiers[rows]
    if precision == "int8":
        with console.status("writing the int8 step (step_int8.onnx)"):
            simulated, scales = int8_model(model, quantized, puzzles.tokens, puzzles.puzzle_identifiers)
            int8 = {**write_int8_step(simulated, out, opset, batch), "scales": scales}
        console.print(f"wrote {int8['file']} ({int8['bytes'] / 1e6:.1f} MB, {int8['products']} int8 products; "
                      f"scales from {scales})")
    if validate:
        with console.status(f"validating against PyTorch on {puzzles.description}"):
            report = validate_export(
                model,
                out,
                graph_precision,
                atol=atol,
                steps=validate_steps,
                tokens=puzzles.tokens,
                puzzle_identifiers=puzzles.puzzle_identifiers,
                real_puzzles=puzzles.real,
                puzzles_description=puzzles.description,
            )
        console.print(validation_table(report))
        if int8 is not None:
            with console.status("validating the int8 step against its PyTorch simulation and float32"):
                int8_report = validate_int8(simulated, model, out, validate_steps, report.tokens,
                                            report.puzzle_identifiers, puzzles.real, puzzles.description)
            console.print(validation_table(int8_report))
            int8["validation"] = int8_report.to_dict()
        if not puzzles.real:
            console.print(f"[yellow]note[/]: {random_validation_notice(model.config)}", soft_wrap=True)
    source = {
        "checkpoint": checkpoint.name,
        "sha256": file_sha256(checkpoint),
        "info": getattr(model, "info", {}),
    }
    metadata = build_metadata(
        model.config, graphs, graph_precision, opset, batch, source, report.to_dict() if report else None
    ).with_int8(int8)
    if report is not None:  # before the metadata, which records it with the graphs
        write_validation_puzzles(out, report.tokens, report.puzzle_identifiers, report.real_puzzles)
    write_metadata(out, metadata)
    fault_point("export: metadata written")
    failed_report = next((r for r in (report, int8_report) if r is not None and not r.passed), None)
    if failed_report is not None:
        # The runtime refuses this folder too (its metadata says the validation failed), but it
        # never takes the export's name: `replacing_export` keeps it as NAME.failed-validation.
        raise ValidationFailed(failed_report)
    return ExportResult(out, metadata, report, ops)


def validation_table(report: ValidationReport) -> Any:
    from rich.table import Table

    table = Table(
        title=f"validation: {report.precision} graph ({report.engine}) vs PyTorch float32 on {report.puzzles}"
    )
    table.add_column("check")
    table.add_column("value", justify="right")
    table.add_column("limit", justify="right")
    table.add_column("pass")
    for c in report.checks:
        value = f"{c.value:.2e}" if c.is_upper_bound else f"{c.value:.2%}"
        limit = f"<= {c.limit:.1e}" if c.is_upper_bound else f">= {c.limit:.1%}"
        table.add_row(c.name, value, limit, "[green]yes[/]" if c.passed else "[red]NO[/]")
    return table
