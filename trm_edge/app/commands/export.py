"""`trm-edge export` and `trm-edge build-engine`: the export stage's commands (options in, library out:
`export` parses its options and calls `trm_edge.export.export`, trm_edge/app/exporting.py)."""

from __future__ import annotations

from pathlib import Path

import typer

from trm_edge.app.cli_common import EXPORT_ARGUMENT, console
from trm_edge.errors import TrmEdgeError
from trm_edge.export.format_table import FORMATS
from trm_edge.output_paths import check_output_folder

FORMAT_NAMES = " | ".join(FORMATS)
EXPORT_PRECISION_HELP = ("fp32 | fp16 | bf16 (weights and activations) | int8 (the fp32 graphs plus "
                         "step_int8.onnx: QDQ with a quantization-aware checkpoint's scales, else calibrated on "
                         "the validation puzzles).")


def export_command(
    ctx: typer.Context,
    checkpoint: Path = typer.Argument(
        ..., help="A trm-edge .safetensors checkpoint, or shipped:NAME (a model shipped in the package)."
    ),
    output: Path | None = typer.Option(None, "-o", "--output", help="Export directory [CKPT_PRECISION_export]."),
    output_format: str = typer.Option("onnx", "--format", help="What to write: " + FORMAT_NAMES + " (below)."),
    precision: str = typer.Option("fp32", "--precision", help=EXPORT_PRECISION_HELP),
    batch: int | None = typer.Option(
        None, "--batch", help="Fix the graphs' batch to N (implies --static; LiteRT's programs: 16 without it)."
    ),
    validate: bool = typer.Option(True, "--validate/--no-validate", help="Compare the graphs with PyTorch."),
    data: Path | None = typer.Option(
        None,
        "--data",
        help="Validate on these puzzles (.npz: official 'inputs' [+ 'puzzle_identifiers'], or Sudoku 'puzzles'; ARC: "
        "task JSON files too). Without it: puzzles the task makes (Sudoku, maze), else random tokens.",
    ),
    engine: bool = typer.Option(False, "--engine", help="Also build a TensorRT engine (the same as --format engine)."),
    solve_graph: bool = typer.Option(
        False, "--solve-graph", help="Also write solve.onnx (the same as --format solve; with --format engine too)."
    ),
) -> None:
    """Export one recursion step to ONNX (init.onnx + step.onnx + trm_edge.json), validated.

    Every H and L cycle is unrolled (no Loop/If/Scan); the state goes in and out explicitly; the
    graph returns logits, argmax answers and the halting logits. Validation runs the graphs in ONNX
    Runtime on real inputs against PyTorch and fails beyond tolerance. Every other format starts
    from this export; its options follow --format (export/format_table.py holds them).
    """
    from trm_edge.export.format_table import get_format, parse_options

    if engine:
        if output_format == "triton":
            raise TrmEdgeError("--engine does not go into a Triton repository: build the plan in the serving "
                               "container (see the repository's README)")
        output_format = "engine"
    parsed = parse_options(get_format(output_format), ctx.args)
    common = parsed.onnx
    if batch is None and not common["dynamic"]:
        raise TrmEdgeError("--static needs --batch N")
    from trm_edge.app.exporting import export
    from trm_edge.export.formats import OnnxOptions

    onnx = OnnxOptions(precision, common["opset"], batch, validate, common["atol"], common["validate_steps"],
                       calibrate=common["calibrate"])
    export(checkpoint, output, output_format, onnx, console, parsed.given_settings(), data=data,
           solve_graph=solve_graph)


def build_engine_command(
    export_dir: Path = EXPORT_ARGUMENT,
    workspace: float = typer.Option(4.0, "--workspace", help="TensorRT workspace in GiB."),
    min_batch: int = typer.Option(1, "--min-batch", help="Smallest batch of the optimisation profile."),
    opt_batch: int = typer.Option(64, "--opt-batch", help="Batch the engine is tuned for."),
    max_batch: int = typer.Option(256, "--max-batch", help="Largest batch of the optimisation profile."),
) -> None:
    """Build a TensorRT engine from an export's step.onnx on this machine's GPU.

    Strongly typed (precision from the ONNX dtypes), one optimisation profile over the batch range,
    a timing cache kept beside it; named by TensorRT version, compute capability and precision.
    """
    check_output_folder(export_dir)  # the engine and its timing cache go beside the graphs
    from trm_edge.export.tensorrt_engine import BatchProfile, build_engine

    path = build_engine(export_dir, BatchProfile(min_batch, opt_batch, max_batch), workspace, console)
    console.print(f"[green]engine[/] {path}")
