"""`trm_edge.export.export`: one call, one format, one function per format.

    export("model.safetensors", "model_export")                          # onnx: an export directory
    export("model.safetensors", "model_export", format="engine")         # + a TensorRT engine for this GPU
    export("model.safetensors", "repo", format="triton")                 # a Triton model repository

Every format starts from the validated ONNX export (`exporter.export_onnx`); with `held_out`
puzzles the export is validated on them, and `finish` runs on it before an engine or repository
is made (the CLI, `trm-edge export --data`, calibrates the default halting policy there).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.console import Console

from trm_edge.contract.triton import Batching
from trm_edge.errors import TrmEdgeError
from trm_edge.export.exporter import export_onnx
from trm_edge.export.onnx_export import DEFAULT_OPSET
from trm_edge.export.tensorrt_engine import BatchProfile

if TYPE_CHECKING:
    from trm_edge.contract.held_out import LabelledPuzzles

FORMATS = ("onnx", "engine", "triton", "web", "executorch")
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
    # What to do with the validated ONNX export before an engine or repository is made from it
    # (`trm-edge export --data` passes the runtime's halting calibration: the app layer composes
    # the stages, this one never imports the runtime).
    finish: Callable[[Path, Console], None] | None = None


@dataclass
class EngineOptions:
    profile: BatchProfile | None = None  # None: min 1, opt 64, max 256 (or the fixed batch)
    workspace_gib: float = 4.0


@dataclass
class WebOptions:
    ort_dist: Path | None = None  # onnxruntime-web's dist folder, copied into the site's ort/


@dataclass
class ProgramOptions:
    width: int = 64  # the most rows one call of the programs takes (their memory is planned for it)


@dataclass
class TritonOptions:
    step: str = "onnxruntime"  # the step model's platform: onnxruntime | tensorrt
    device: str = "gpu"  # where Triton runs the graphs: gpu | cpu
    batching: Batching = field(default_factory=Batching)


def export(
    checkpoint: str | Path,
    output: str | Path | None = None,
    format: str = "onnx",
    onnx: OnnxOptions | None = None,
    engine: EngineOptions | None = None,
    triton: TritonOptions | None = None,
    console: Console | None = None,
    web: WebOptions | None = None,
    programs: ProgramOptions | None = None,
) -> Path:
    """Export `checkpoint` as `format`; returns the export directory (onnx, engine) or the
    repository (triton). For triton, `checkpoint` may also be an existing export directory."""
    console = console or Console(quiet=True)
    onnx = onnx or OnnxOptions()
    if format == "onnx":
        return export_onnx_format(Path(checkpoint), output, onnx, console)
    if format == "engine":
        return export_engine_format(Path(checkpoint), output, onnx, engine or EngineOptions(), console)
    if format == "triton":
        if output is None:
            raise TrmEdgeError("a Triton export needs -o REPO (a new folder for the model repository)")
        return export_triton_format(Path(checkpoint), Path(output), onnx, triton or TritonOptions(), console)
    if format == "web":
        if output is None:
            raise TrmEdgeError("a web export needs -o SITE (a new folder for the page)")
        return export_web_format(Path(checkpoint), Path(output), onnx, web or WebOptions(), console)
    if format == "executorch":
        return export_program_format(Path(checkpoint), output, format, onnx, programs or ProgramOptions(), console)
    raise TrmEdgeError(f"export format {format!r} is not one of {', '.join(FORMATS)}")


def export_onnx_format(checkpoint: Path, output: str | Path | None, options: OnnxOptions, console: Console) -> Path:
    held_out = options.held_out
    tokens = ids = None
    if held_out is not None:
        tokens = held_out.inputs[:HELD_OUT_FOR_VALIDATION]
        ids = held_out.puzzle_identifiers[:HELD_OUT_FOR_VALIDATION]
    result = export_onnx(
        checkpoint, output, precision=options.precision, opset=options.opset, batch=options.batch,
        validate=options.validate, atol=options.atol, validate_steps=options.validate_steps, tokens=tokens,
        puzzle_identifiers=ids, console=console, validation_name=options.held_out_name,
    )
    console.print(f"[green]exported[/] {result.directory}")
    if options.finish is not None:
        options.finish(result.directory, console)
    return result.directory


def export_engine_format(
    checkpoint: Path, output: str | Path | None, onnx: OnnxOptions, options: EngineOptions, console: Console
) -> Path:
    from trm_edge.export.tensorrt_engine import build_engine

    directory = export_onnx_format(checkpoint, output, onnx, console)
    profile = options.profile
    if profile is None:
        profile = BatchProfile(onnx.batch, onnx.batch, onnx.batch) if onnx.batch else BatchProfile(1, 64, 256)
    path = build_engine(directory, profile, options.workspace_gib, console)
    console.print(f"[green]engine[/] {path}")
    return directory


def export_program_format(checkpoint: Path, output: str | Path | None, format: str, onnx: OnnxOptions,
                          options: ProgramOptions, console: Console) -> Path:
    """The ONNX export plus the same graphs as a phone runtime's programs (export/program_export.py)."""
    from trm_edge.export.program_export import add_programs, require_converter

    require_converter(format)  # before minutes of export, not after
    if onnx.precision != "fp32":
        raise TrmEdgeError(f"--format {format} writes float32 programs (XNNPACK runs them): use --precision fp32")
    if checkpoint.is_dir():
        raise TrmEdgeError(f"--format {format} starts from a checkpoint (.safetensors), not an export directory")
    directory = export_onnx_format(checkpoint, output, onnx, console)
    add_programs(directory, checkpoint, format, options.width, console, onnx.validate, onnx.validate_steps)
    console.print(f"[green]{format} programs[/] in {directory} (run them with --backend {format})")
    return directory


def export_triton_format(
    checkpoint: Path, repository: Path, onnx: OnnxOptions, options: TritonOptions, console: Console
) -> Path:
    from trm_edge.export.triton_repository import check_repository_target, write_triton_repository

    check_repository_target(repository)  # before minutes of export, not after
    options.batching.check()
    if checkpoint.is_dir():  # already an export directory
        write_triton_repository(checkpoint, repository, step_platform=options.step, device=options.device,
                                batching=options.batching)
    else:
        # The validated (and calibrated) ONNX export goes to scratch space, removed on every path.
        with tempfile.TemporaryDirectory(prefix="trm-edge-export-") as scratch:
            directory = export_onnx_format(checkpoint, Path(scratch) / "export", onnx, console)
            write_triton_repository(directory, repository, step_platform=options.step, device=options.device,
                                    batching=options.batching)
    console.print(f"[green]Triton model repository[/] {repository} (see {repository / 'README.md'})")
    return repository


def export_web_format(checkpoint: Path, site: Path, onnx: OnnxOptions, options: WebOptions, console: Console) -> Path:
    """A static page that solves Sudokus in the browser (export/web_site.py); the ONNX export goes to
    scratch space, and `onnx.finish` must write solve.onnx into it (the CLI's --format web does)."""
    from trm_edge.export.web_site import check_site_target, write_web_site

    check_site_target(site)  # before minutes of export, not after
    with tempfile.TemporaryDirectory(prefix="trm-edge-export-") as scratch:
        directory = export_onnx_format(checkpoint, Path(scratch) / "export", onnx, console)
        parameters = sum(int(np.prod(t.dims)) for t in _weights(directory / "step.onnx") if len(t.dims) > 1)
        write_web_site(directory, site, options.ort_dist, parameters)
    note = "" if options.ort_dist else f"; put onnxruntime-web's files in {site / 'ort'} (see its README.txt)"
    console.print(f"[green]web page[/] {site}: serve the folder with any static file server and open "
                  f"index.html{note}", highlight=False)
    return site


def _weights(path: Path) -> list[Any]:
    import onnx

    return list(onnx.load(str(path)).graph.initializer)
