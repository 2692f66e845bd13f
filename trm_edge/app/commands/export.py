"""`trm-edge export` and `trm-edge build-engine`: the export stage's commands (options in, library out)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from trm_edge.app.cli_common import console
from trm_edge.errors import TrmEdgeError

if TYPE_CHECKING:
    from trm_edge.contract.held_out import LabelledPuzzles


EXPORT_PRECISION_HELP = ("fp32 | fp16 | bf16 (weights and activations) | int8 (the fp32 graphs plus "
                         "step_int8.onnx: QDQ with a quantization-aware checkpoint's scales, else calibrated on "
                         "the validation puzzles).")


def export_command(
    checkpoint: Path = typer.Argument(
        ..., help="A trm-edge .safetensors checkpoint, or shipped:NAME (a model shipped in the package)."
    ),
    output: Path | None = typer.Option(None, "-o", "--output", help="Export directory [CKPT_PRECISION_export]."),
    precision: str = typer.Option("fp32", "--precision", help=EXPORT_PRECISION_HELP),
    opset: int = typer.Option(17, "--opset", help="ONNX opset, 17-20 (17 parses on TensorRT 10.x / Jetson)."),
    dynamic: bool = typer.Option(True, "--dynamic/--static", help="Dynamic batch axis (default) or fixed."),
    batch: int | None = typer.Option(None, "--batch", help="Fix the batch to N (implies --static)."),
    atol: float | None = typer.Option(None, "--atol", help="Absolute tolerance for the step outputs."),
    validate: bool = typer.Option(True, "--validate/--no-validate", help="Compare the graphs with PyTorch."),
    validate_steps: int = typer.Option(4, "--validate-steps", help="Looped steps whose answers are compared."),
    data: Path | None = typer.Option(
        None,
        "--data",
        help="Validate on these puzzles (.npz: official 'inputs' [+ 'puzzle_identifiers'], or Sudoku 'puzzles'; ARC: "
        "task JSON files too). Without it: puzzles the task makes (Sudoku, maze), else random tokens.",
    ),
    calibrate: bool = typer.Option(
        True, "--calibrate/--no-calibrate", help="With --data: choose the default halting policy on it (labels "
        "optional: without them answers are scored by verification or agreement with max steps)."
    ),
    engine: bool = typer.Option(False, "--engine", help="Also build a TensorRT engine (the same as --format engine)."),
    solve_graph: bool = typer.Option(
        False, "--solve-graph", help="Also write solve.onnx: the whole solve (loop and halting) as one graph, for any "
        "ONNX runtime in any language (checked against the runtime's answers)."
    ),
    workspace: float = typer.Option(4.0, "--workspace", help="TensorRT workspace in GiB."),
    min_batch: int = typer.Option(1, "--min-batch", help="TensorRT profile: smallest batch."),
    opt_batch: int = typer.Option(64, "--opt-batch", help="TensorRT profile: batch to tune for."),
    max_batch: int | None = typer.Option(
        None, "--max-batch", help="Largest batch: of the TensorRT profile and Triton [256]; of one call of the "
        "executorch programs [64]."),
    output_format: str = typer.Option(
        "onnx", "--format", help="onnx (an export directory) | engine (+ a TensorRT engine) | triton (a Triton "
        "model repository) | web (a static page that solves Sudokus in the browser, -o SITE) | executorch (+ "
        "init.pte and step.pte for ExecuTorch's runtime, XNNPACK; pip install 'trm-edge[executorch]')."
    ),
    ort_web: Path | None = typer.Option(
        None, "--ort-web", help="With --format web: onnxruntime-web's dist folder, copied into the site "
        "(node_modules/onnxruntime-web/dist)."
    ),
    triton_step: str = typer.Option("onnxruntime", "--triton-step", help="Triton step model: onnxruntime | tensorrt."),
    triton_device: str = typer.Option("gpu", "--triton-device", help="Where Triton runs the graphs: gpu | cpu."),
    triton_instances: int = typer.Option(1, "--triton-instances", help="Instances of the Triton solver model."),
    queue_delay_us: int = typer.Option(1000, "--queue-delay-us", help="Triton dynamic batching delay (us)."),
) -> None:
    """Export one recursion step to ONNX (init.onnx + step.onnx + trm_edge.json), validated.

    Every H and L cycle is unrolled (no Loop/If/Scan); the state goes in and out explicitly; the
    graph returns logits, argmax answers and the halting logits. Validation runs the graphs in ONNX
    Runtime on real inputs against PyTorch and fails beyond tolerance.

    --format engine also builds a TensorRT engine for this machine's GPU. --format triton writes a
    Triton model repository instead (-o REPO): the step and init graphs as onnxruntime (or
    tensorrt_plan) models and a Python-backend model that loops them until each puzzle halts.
    CHECKPOINT may then also be an existing export directory.
    """
    if str(checkpoint).startswith("shipped:"):
        from trm_edge.shipped import checkpoint_path

        checkpoint = checkpoint_path(checkpoint)  # an unknown name fails here, before the heavy imports
        from trm_edge.export.exporter import default_output_dir

        # The usual name, but in the working folder: never beside the package's own file.
        output = output or Path(default_output_dir(checkpoint, precision).name)

    from trm_edge.contract.triton import Batching
    from trm_edge.export.formats import (
        EngineOptions,
        OnnxOptions,
        ProgramOptions,
        TritonOptions,
        WebOptions,
        export,
    )
    from trm_edge.export.tensorrt_engine import BatchProfile

    if engine:
        if output_format == "triton":
            raise TrmEdgeError("--engine does not go into a Triton repository: build the plan in the serving "
                               "container (see the repository's README)")
        output_format = "engine"
    if batch is None and not dynamic:
        raise TrmEdgeError("--static needs --batch N")
    held_out = None
    if data is not None and not (output_format == "triton" and checkpoint.is_dir()):
        held_out = read_held_out(checkpoint, data)
    steps = [calibrate_on(held_out, data.name)] if calibrate and held_out is not None and data is not None else []
    if solve_graph or output_format == "web":  # the page runs solve.onnx
        from trm_edge.app.solve_graph import half_precision_refused, write_solve_graph

        refused = half_precision_refused(precision)  # before the export does its work
        if refused is not None:
            raise refused
        steps.append(write_solve_graph)  # after calibration: the graph halts by the export's default policy
    finish = _in_turn(steps) if steps else None
    onnx = OnnxOptions(precision, opset, batch, validate, atol, validate_steps, held_out,
                       data.name if data is not None else "held-out puzzles", finish)
    largest = max_batch or 256
    profile = BatchProfile(batch, batch, batch) if batch is not None else BatchProfile(min_batch, opt_batch, largest)
    export(
        checkpoint, output, output_format, onnx=onnx,
        engine=EngineOptions(profile, workspace),
        triton=TritonOptions(triton_step, triton_device, Batching(max_batch=largest, queue_delay_us=queue_delay_us,
                                                                  instances=triton_instances)),
        console=console, web=WebOptions(ort_web), programs=ProgramOptions(max_batch or batch or 64),
    )


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
        store(export_dir, result, data_name)
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
    from trm_edge.export.tensorrt_engine import BatchProfile, build_engine

    path = build_engine(export_dir, BatchProfile(min_batch, opt_batch, max_batch), workspace, console)
    console.print(f"[green]engine[/] {path}")
