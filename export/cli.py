"""`trm-edge export` and `trm-edge build-engine`: the export stage's commands."""

from __future__ import annotations

import tempfile
from pathlib import Path

import typer

from trm_edge.cli_common import console


def export_command(
    checkpoint: Path = typer.Argument(..., help="A trm-edge .safetensors checkpoint."),
    output: Path | None = typer.Option(None, "-o", "--output", help="Export directory [CKPT_PRECISION_export]."),
    precision: str = typer.Option("fp32", "--precision", help="fp32 | fp16 | bf16 (weights and activations)."),
    opset: int = typer.Option(17, "--opset", help="ONNX opset, 17-20 (17 parses on TensorRT 10.x / Jetson)."),
    dynamic: bool = typer.Option(True, "--dynamic/--static", help="Dynamic batch axis (default) or fixed."),
    batch: int | None = typer.Option(None, "--batch", help="Fix the batch to N (implies --static)."),
    atol: float | None = typer.Option(None, "--atol", help="Absolute tolerance for the step outputs."),
    validate: bool = typer.Option(True, "--validate/--no-validate", help="Compare the graphs with PyTorch."),
    validate_steps: int = typer.Option(4, "--validate-steps", help="Looped steps whose answers are compared."),
    data: Path | None = typer.Option(
        None,
        "--data",
        help="Validate on these puzzles (.npz: official 'inputs' [+ 'puzzle_identifiers'], or Sudoku 'puzzles').",
    ),
    calibrate: bool = typer.Option(
        True, "--calibrate/--no-calibrate", help="With --data: choose the default halting policy on it (labels "
        "optional: without them answers are scored by verification or agreement with max steps)."
    ),
    engine: bool = typer.Option(False, "--engine", help="Also build a TensorRT engine (needs a GPU + tensorrt)."),
    workspace: float = typer.Option(4.0, "--workspace", help="TensorRT workspace in GiB."),
    min_batch: int = typer.Option(1, "--min-batch", help="TensorRT profile: smallest batch."),
    opt_batch: int = typer.Option(64, "--opt-batch", help="TensorRT profile: batch to tune for."),
    max_batch: int = typer.Option(256, "--max-batch", help="TensorRT profile / Triton: largest batch."),
    output_format: str = typer.Option(
        "onnx", "--format", help="onnx (an export directory) | triton (a Triton model repository)."
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

    --format triton writes a Triton model repository instead (-o REPO): the step and init graphs
    as onnxruntime (or tensorrt_plan) models and a Python-backend model that loops them until each
    puzzle halts. CHECKPOINT may then also be an existing export directory.
    """
    from trm_edge.export.exporter import export

    if output_format not in ("onnx", "triton"):
        raise typer.BadParameter(f"--format must be onnx or triton, got {output_format!r}")
    triton_repo: Path | None = None
    if output_format == "triton":
        # The ONNX export (validated, calibrated with --data) goes to a scratch folder, then into the repository.
        if output is None:
            raise typer.BadParameter("--format triton needs -o REPO (a new folder for the model repository)")
        if engine:
            raise typer.BadParameter("--engine does not go into a Triton repository: build the plan in the serving "
                                     "container (see the repository's README)")
        from trm_edge.export.triton_repository import check_repository_target
        from trm_edge.runtime.serving.contract import Batching

        check_repository_target(output)  # before minutes of export, not after
        triton_repo = output

        batching = Batching(max_batch=max_batch, queue_delay_us=queue_delay_us, instances=triton_instances)
        batching.check()
        if checkpoint.is_dir():  # already an export directory
            _write_triton(checkpoint, triton_repo, triton_step, triton_device, batching)
            return
        scratch = tempfile.TemporaryDirectory(prefix="trm-edge-export-")
        output = Path(scratch.name) / "export"
    if batch is None and not dynamic:
        raise typer.BadParameter("--static needs --batch N")
    tokens = ids = held_out = None
    if data is not None:
        from trm_edge.checkpoint import read_header
        from trm_edge.runtime.labels import load_puzzles

        model_config, _ = read_header(checkpoint)
        held_out = load_puzzles(data, model_config.seq_len, model_config.vocab_size)
        tokens, ids = held_out.inputs[:64], held_out.puzzle_identifiers[:64]
    result = export(
        checkpoint,
        output,
        precision=precision,
        opset=opset,
        batch=batch,
        validate=validate,
        atol=atol,
        validate_steps=validate_steps,
        tokens=tokens,
        puzzle_identifiers=ids,
        console=console,
    )
    console.print(f"[green]exported[/] {result.directory}")
    if calibrate and held_out is not None:
        _calibrate_halting(result.directory, held_out, data.name)  # type: ignore[union-attr]
    if engine:
        from trm_edge.export.tensorrt_engine import BatchProfile, build_engine

        profile = BatchProfile(min_batch, opt_batch, max_batch) if batch is None else BatchProfile(batch, batch, batch)
        path = build_engine(result.directory, profile, workspace, console)
        console.print(f"[green]engine[/] {path}")
    if triton_repo is not None:
        _write_triton(result.directory, triton_repo, triton_step, triton_device, batching)
        scratch.cleanup()


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


def _calibrate_halting(export_dir: Path, held_out, data_name: str) -> None:  # type: ignore[no-untyped-def]
    """Store the halting policy chosen on the labelled validation data (see `trm-edge calibrate`)."""
    from trm_edge.errors import TrmEdgeError
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


def _write_triton(export_dir: Path, repo: Path, step: str, device: str, batching) -> None:  # type: ignore[no-untyped-def]
    from trm_edge.export.triton_repository import write_triton_repository

    write_triton_repository(export_dir, repo, step_platform=step, device=device, batching=batching)
    console.print(f"[green]Triton model repository[/] {repo} (see {repo / 'README.md'})")
