"""One format written: `export_format(checkpoint, output, format, onnx, console, settings)`; the
formats, their options and their writers are the table in export/format_table.py, the writers of
the built-in ones below.

Users call `trm_edge.export.export` (trm_edge/app/exporting.py), which is also what `trm-edge
export` runs: it adds what needs the runtime (the halting calibration on `--data`, solve.onnx and
its check) as `finish`, and calls this.

Every format starts from the validated ONNX export (`exporter.build_onnx_export`); with `held_out`
puzzles the export is validated on them, and `finish` runs on it before an engine, programs, a
repository or a site is made from it.

A format that writes an export directory writes all of it (graphs, validation, int8 step, `finish`,
programs, engines) into a staging folder, swapped in by `export` only when all of it passed
(`exporter.replacing_export`): the previous export stays whole until then.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.console import Console

from trm_edge.contract.triton import Batching
from trm_edge.errors import ExportCheckFailed, TrmEdgeError
from trm_edge.export.exporter import build_onnx_export, default_output_dir, replacing_export
from trm_edge.export.files import STEP_GRAPH
from trm_edge.export.format_table import LITERT_BATCH, get_format
from trm_edge.export.onnx_export import DEFAULT_OPSET
from trm_edge.export.tensorrt_engine import BatchProfile
from trm_edge.programs import PROGRAM_FORMATS

if TYPE_CHECKING:
    from trm_edge.contract.held_out import LabelledPuzzles

HELD_OUT_FOR_VALIDATION = 64  # puzzles of `held_out` the validation runs


@dataclass
class OnnxOptions:
    precision: str = "fp32"
    opset: int = DEFAULT_OPSET
    batch: int | None = None  # a fixed batch (static graphs); None: a dynamic batch axis
    validate: bool = True
    atol: float | None = None
    validate_steps: int = 4
    held_out: LabelledPuzzles | None = None  # validate on these
    held_out_name: str = "held-out puzzles"
    calibrate: bool = True  # with held_out: `trm_edge.export.export` chooses the default halting on them
    # What to do with the validated ONNX export before an engine or repository is made from it
    # (`trm_edge.export.export` passes the runtime's halting calibration and solve.onnx: the app
    # layer composes the stages, this one never imports the runtime).
    finish: Callable[[Path, Console], None] | None = None


def export_format(
    checkpoint: str | Path,
    output: str | Path | None = None,
    format: str = "onnx",
    onnx: OnnxOptions | None = None,
    console: Console | None = None,
    settings: Mapping[str, Any] | None = None,
) -> Path:
    """Export `checkpoint` as `format` (export/format_table.py); returns the export directory, or the
    repository or site the format writes. `settings`: the format's options by name (the table's
    defaults fill the rest). For triton, `checkpoint` may also be an existing export directory."""
    entry = get_format(format)
    given = dict(settings or {})
    if onnx is not None and onnx.batch is not None and format in PROGRAM_FORMATS and "max_batch" not in given \
            and any(o.name == "max_batch" for o in entry.options):
        given["max_batch"] = onnx.batch  # a fixed batch bounds the programs too
    filled = entry.settings(given)
    onnx, console = onnx or OnnxOptions(), console or Console(quiet=True)
    if entry.output is not None:  # a repository or site: its writer makes it whole (or not at all)
        if output is None:
            raise TrmEdgeError(f"a {format} export needs -o {entry.output}")
        return entry.write()(Path(checkpoint), Path(output), onnx, filled, console)
    # An export directory: every writer's file goes into the staging folder, swapped in once all passed.
    target = Path(output) if output is not None else default_output_dir(Path(checkpoint), onnx.precision)
    with replacing_export(target) as staging:
        entry.write()(Path(checkpoint), staging, onnx, filled, console)
    console.print(f"[green]exported[/] {target}")
    return target


def write_onnx(checkpoint: Path, output: Path | None, onnx: OnnxOptions, settings: dict[str, Any],
               console: Console) -> Path:
    return export_onnx_format(checkpoint, output, onnx, console)


def export_onnx_format(checkpoint: Path, output: str | Path | None, options: OnnxOptions, console: Console) -> Path:
    held_out = options.held_out
    tokens = ids = None
    if held_out is not None:
        tokens = held_out.inputs[:HELD_OUT_FOR_VALIDATION]
        ids = held_out.puzzle_identifiers[:HELD_OUT_FOR_VALIDATION]
    result = build_onnx_export(
        checkpoint, Path(output) if output is not None else default_output_dir(checkpoint, options.precision),
        precision=options.precision, opset=options.opset, batch=options.batch,
        validate=options.validate, atol=options.atol, validate_steps=options.validate_steps, tokens=tokens,
        puzzle_identifiers=ids, console=console, validation_name=options.held_out_name,
    )
    if options.finish is not None:  # into the folder being built (the staging folder), before the swap
        try:
            options.finish(result.directory, console)
        except ExportCheckFailed:
            raise
        except TrmEdgeError as exc:  # the calibration's: the build is kept for inspection all the same
            raise ExportCheckFailed(str(exc)) from None
    return result.directory


def write_engine(checkpoint: Path, output: Path | None, onnx: OnnxOptions, settings: dict[str, Any],
                 console: Console) -> Path:
    from trm_edge.export.tensorrt_engine import build_engine

    directory = export_onnx_format(checkpoint, output, onnx, console)
    if onnx.batch:  # a fixed batch is the whole profile
        profile = BatchProfile(onnx.batch, onnx.batch, onnx.batch)
    else:
        profile = BatchProfile(settings["min_batch"], settings["opt_batch"], settings["max_batch"])
    path = build_engine(directory, profile, settings["workspace"], console)
    console.print(f"[green]engine[/] {path.name}")
    return directory


def write_programs(checkpoint: Path, output: Path | None, onnx: OnnxOptions, settings: dict[str, Any],
                   console: Console, format: str = "executorch", width: int | None = None) -> Path:
    """The ONNX export plus the same graphs as a phone runtime's programs (export/program_export.py),
    taking at most `width` rows (ExecuTorch's --max-batch) or exactly (LiteRT's --batch)."""
    from trm_edge.export.program_export import FILES, add_programs, require_converter

    require_converter(format)  # before minutes of export, not after
    if onnx.precision != "fp32":
        raise TrmEdgeError(f"--format {format} writes float32 programs (XNNPACK runs them): use --precision fp32")
    if checkpoint.is_dir():
        raise TrmEdgeError(f"--format {format} starts from a checkpoint (.safetensors), not an export directory")
    directory = export_onnx_format(checkpoint, output, onnx, console)
    add_programs(directory, checkpoint, format, width or settings["max_batch"], console, onnx.validate,
                 onnx.validate_steps)
    console.print(f"[green]{format} programs[/] {', '.join(FILES[format])} (run them with --backend {format})")
    return directory


def write_litert(checkpoint: Path, output: Path | None, onnx: OnnxOptions, settings: dict[str, Any],
                 console: Console) -> Path:
    return write_programs(checkpoint, output, onnx, settings, console, format="litert",
                          width=onnx.batch or LITERT_BATCH)


def write_triton(checkpoint: Path, output: Path | None, onnx: OnnxOptions, settings: dict[str, Any],
                 console: Console) -> Path:
    from trm_edge.export.triton_repository import check_repository_target, write_triton_repository

    assert output is not None  # export() checked the table's `output`
    repository = output
    check_repository_target(repository)  # before minutes of export, not after
    batching = Batching(max_batch=settings["max_batch"], queue_delay_us=settings["queue_delay_us"],
                        instances=settings["triton_instances"])
    batching.check()
    step, device = settings["triton_step"], settings["triton_device"]
    if checkpoint.is_dir():  # already an export directory
        write_triton_repository(checkpoint, repository, step_platform=step, device=device, batching=batching)
    else:
        # The validated (and calibrated) ONNX export goes to scratch space, removed on every path.
        with tempfile.TemporaryDirectory(prefix="trm-edge-export-") as scratch:
            directory = export_onnx_format(checkpoint, Path(scratch) / "export", onnx, console)
            write_triton_repository(directory, repository, step_platform=step, device=device,
                                    batching=batching)
    console.print(f"[green]Triton model repository[/] {repository} (see {repository / 'README.md'})")
    return repository


def write_web(checkpoint: Path, output: Path | None, onnx: OnnxOptions, settings: dict[str, Any],
              console: Console) -> Path:
    """A static page that solves Sudokus in the browser (export/web_site.py); the ONNX export goes to
    scratch space, and `onnx.finish` must write solve.onnx into it (`trm_edge.export.export` does)."""
    from trm_edge.export.web_site import check_site_target, write_web_site

    assert output is not None  # export() checked the table's `output`
    site, ort_dist = output, settings["ort_web"]
    check_site_target(site)  # before minutes of export, not after
    with tempfile.TemporaryDirectory(prefix="trm-edge-export-") as scratch:
        directory = export_onnx_format(checkpoint, Path(scratch) / "export", onnx, console)
        parameters = sum(int(np.prod(t.dims)) for t in _weights(directory / STEP_GRAPH) if len(t.dims) > 1)
        write_web_site(directory, site, ort_dist, parameters)
    note = "" if ort_dist else f"; put onnxruntime-web's files in {site / 'ort'} (see its README.txt)"
    console.print(f"[green]web page[/] {site}: serve the folder with any static file server and open "
                  f"index.html{note}", highlight=False)
    return site


def _weights(path: Path) -> list[Any]:
    import onnx

    return list(onnx.load(str(path)).graph.initializer)
