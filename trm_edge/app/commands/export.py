"""`trm-edge export` and `trm-edge build-engine`: the export stage's commands (options in, library out)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from trm_edge.app.cli_common import console
from trm_edge.errors import TrmEdgeError
from trm_edge.export.format_table import FORMATS
from trm_edge.output_paths import check_output_folder
from trm_edge.programs import PROGRAM_FORMATS

if TYPE_CHECKING:
    from trm_edge.contract.held_out import LabelledPuzzles


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
    batch: int | None = typer.Option(None, "--batch", help="Fix the batch to N (implies --static)."),
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
    entry = get_format(output_format)
    parsed = parse_options(entry, ctx.args)
    if str(checkpoint).startswith("shipped:"):
        from trm_edge.shipped import checkpoint_path

        checkpoint = checkpoint_path(checkpoint)  # an unknown name fails here, before the heavy imports
        from trm_edge.export.exporter import default_output_dir

        # The usual name, but in the working folder: never beside the package's own file.
        output = output or Path(default_output_dir(checkpoint, precision).name)

    from trm_edge.export.formats import OnnxOptions, export

    common = parsed.onnx
    if batch is None and not common["dynamic"]:
        raise TrmEdgeError("--static needs --batch N")
    if output is not None or entry.output is None:  # else export() says -o is needed
        from trm_edge.export.exporter import default_output_dir

        # Built beside it and swapped in (a repository or site too): refused here, before any work.
        check_output_folder(output or default_output_dir(checkpoint, precision), replaced=True)
    held_out = None
    if data is not None and not (output_format == "triton" and checkpoint.is_dir()):
        held_out = read_held_out(checkpoint, data)
    steps = [calibrate_on(held_out, data.name)] if common["calibrate"] and held_out is not None and data else []
    if solve_graph or entry.solve_graph:  # solve.onnx, checked with the runtime: the app layer writes it
        from trm_edge.app.solve_graph import half_precision_refused, write_solve_graph

        refused = half_precision_refused(precision)  # before the export does its work
        if refused is not None:
            raise refused
        steps.append(write_solve_graph)  # after calibration: the graph halts by the export's default policy
    onnx = OnnxOptions(precision, common["opset"], batch, validate, common["atol"], common["validate_steps"],
                       held_out, data.name if data is not None else "held-out puzzles",
                       _in_turn(steps) if steps else None)
    settings = dict(parsed.settings)
    if batch is not None and output_format in PROGRAM_FORMATS and "max_batch" not in parsed.given:
        settings["max_batch"] = batch  # a fixed batch is the programs' width
    export(checkpoint, output, output_format, onnx=onnx, console=console, settings=settings)


def _in_turn(steps: Sequence[Callable[[Path, Console], object]]) -> Callable[[Path, Console], None]:
    def run(export_dir: Path, console: Console) -> None:
        for step in steps:
            step(export_dir, console)

    return run


def calibrate_on(held_out: LabelledPuzzles, data_name: str) -> Callable[[Path, Console], None]:
    """The step after export for `--data`: choose the default halting policy on the held-out puzzles
    with the runtime (see `trm-edge calibrate`) and store it in the export."""

    def calibrate_halting(export_dir: Path, console: Console) -> None:
        from trm_edge.runtime.calibrate import calibrate, describe_choice, store
        from trm_edge.runtime.solver import Solver

        try:
            solver = Solver.load(export_dir, backend="auto", halt="model")
        except TrmEdgeError as exc:  # e.g. a bf16 export on a machine without a GPU backend
            console.print(f"[yellow]halting not calibrated[/]: {exc}; run 'trm-edge calibrate' where it runs")
            return
        with console.status(f"calibrating halting on {len(held_out)} puzzles"):
            result = calibrate(solver, held_out)
        store(export_dir, result, data_name, solver.meta)
        console.print(describe_choice(result))

    return calibrate_halting


def read_held_out(checkpoint: Path, data: Path) -> LabelledPuzzles:
    """`--data` as labelled puzzles: an .npz, or for an ARC checkpoint ARC task files (the test
    inputs of the tasks it knows, unlabelled)."""
    from trm_edge.checkpoint import read_header
    from trm_edge.contract.held_out import LabelledPuzzles, load_puzzles

    model_config, info = read_header(checkpoint)
    if model_config.task == "arc" and (data.is_dir() or data.suffix == ".json"):
        from trm_edge.export.validation_puzzles import arc_test_inputs

        tokens, ids = arc_test_inputs(data, model_config, info.get("puzzle_names"))
        return LabelledPuzzles(tokens, None, ids)
    return load_puzzles(data, model_config.seq_len, model_config.vocab_size)


def build_engine_command(
    export_dir: Path = typer.Argument(..., help="An export directory (from trm-edge export)."),
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
