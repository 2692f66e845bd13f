"""The `trm-edge` command. Each stage's commands import their heavy dependencies (torch, onnx,
onnxruntime) lazily, so the runtime commands work on a device that has no torch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table
from typer.core import TyperCommand

from trm_edge import __version__
from trm_edge.app.cli_common import console, run_app
from trm_edge.app.commands.bench import bench_command
from trm_edge.app.commands.export import build_engine_command, export_command
from trm_edge.app.commands.serve import guard_command, serve_command
from trm_edge.app.commands.solve import calibrate_command, solve_command
from trm_edge.app.commands.solve_arc import solve_arc_command
from trm_edge.app.commands.train import data_app, train_command
from trm_edge.errors import TrmEdgeError
from trm_edge.export.format_table import options_help
from trm_edge.output_paths import check_output_file, check_output_folder

app = typer.Typer(
    name="trm-edge",
    help="Tiny Recursive Models from training to devices: convert, train, export, solve, bench.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="markdown",
)


def _version(value: bool) -> None:
    if value:
        console.print(f"trm-edge {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Tiny Recursive Models (TRM, HRM) from training to devices."""


@app.command()
def convert(
    checkpoint: Path = typer.Argument(..., help="Official TinyRecursiveModels/HRM checkpoint (.pt state dict)."),
    output: Path = typer.Option(..., "-o", "--output", help="Where to write the .safetensors checkpoint."),
    config: Path | None = typer.Option(None, "--config", help="The official all_config.yaml beside it."),
    dataset: Path | None = typer.Option(
        None, "--dataset", help="The official dataset.json (sizes; the identifiers.json two folders up names the ids)."
    ),
    identifiers: Path | None = typer.Option(
        None, "--identifiers", help="The official identifiers.json, if not beside the dataset folder."
    ),
    seq_len: int | None = typer.Option(None, "--seq-len", help="Puzzle length in tokens."),
    vocab_size: int | None = typer.Option(None, "--vocab-size", help="Token vocabulary size."),
    num_puzzle_ids: int | None = typer.Option(None, "--num-puzzle-ids", help="Rows of the puzzle embedding."),
    h_cycles: int | None = typer.Option(None, "--H-cycles", help="H cycles per supervision step."),
    l_cycles: int | None = typer.Option(None, "--L-cycles", help="L cycles per H cycle."),
    num_heads: int | None = typer.Option(None, "--num-heads", help="Attention heads."),
    pos_encodings: str | None = typer.Option(None, "--pos-encodings", help="rope | learned | none."),
    halt_max_steps: int | None = typer.Option(None, "--halt-max-steps", help="Supervision steps at most."),
    task: str | None = typer.Option(None, "--task", help="Task codec: sudoku | maze | arc | generic."),
) -> None:
    """Import an official TinyRecursiveModels / HRM checkpoint as a trm-edge .safetensors.

    The pickle is read with weights_only=True (no code runs). What the tensors imply is inferred;
    the rest comes from --config / --dataset or the explicit options, which override them.
    """
    from trm_edge.checkpoint import save_checkpoint
    from trm_edge.convert import convert_official

    if output.suffix != ".safetensors":
        raise TrmEdgeError(f"-o {output}: a trm-edge checkpoint is a .safetensors file; give a name ending in it")
    check_output_file(output, None, checkpoint, config, dataset, identifiers, makes_folders=True)
    overrides = {
        "seq_len": seq_len,
        "vocab_size": vocab_size,
        "num_puzzle_identifiers": num_puzzle_ids,
        "H_cycles": h_cycles,
        "L_cycles": l_cycles,
        "num_heads": num_heads,
        "pos_encodings": pos_encodings,
        "halt_max_steps": halt_max_steps,
        "task": task,
    }
    model = convert_official(checkpoint, config, dataset, overrides, identifiers)
    save_checkpoint(model, output, info=model.info)
    names = model.info.get("puzzle_names")
    named = f", {len(names):,} puzzle names" if names else ""
    console.print(f"wrote {output} ({model.config.arch.upper()}, {model.num_parameters():,} parameters{named})")


@app.command()
def info(
    checkpoint: str = typer.Argument(
        ..., help="A trm-edge .safetensors checkpoint, or shipped:NAME (sudoku-small, maze-small)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the config and provenance as JSON."),
) -> None:
    """Show a checkpoint's architecture, sizes, parameter count and halting rule."""
    from trm_edge.checkpoint import load_checkpoint
    from trm_edge.shipped import checkpoint_path

    model = load_checkpoint(checkpoint_path(checkpoint))
    c = model.config
    provenance = model.info
    if as_json:
        print(json.dumps({"config": c.to_dict(), "parameters": model.num_parameters(), "info": provenance}, indent=2))
        return
    mixer = "MLP over tokens (mlp_t)" if c.mlp_t else f"self-attention, {c.num_heads} heads"
    nets = f"L net {c.L_layers} layers" + (f", H net {c.H_layers} layers" if c.arch == "hrm" else " (shared)")
    rule = {"q_halt>0": "halt when q_halt > 0", "q_halt>q_continue": "halt when q_halt > q_continue"}
    table = Table(title=str(checkpoint), show_header=False)
    rows = [
        ("architecture", f"{c.arch.upper()}, {nets}"),
        ("token mixing", mixer),
        ("positions", c.pos_encodings),
        ("hidden size", f"{c.hidden_size} (MLP expansion {c.expansion:g})"),
        ("cycles per step", f"H {c.H_cycles} x (L {c.L_cycles} + 1)"),
        ("puzzle", f"{c.seq_len} tokens, vocabulary {c.vocab_size}, task {c.task}"),
        (
            "puzzle embedding",
            f"{c.num_puzzle_identifiers} ids x {c.puzzle_emb_ndim} in {c.puzzle_emb_len} prefix tokens"
            if c.puzzle_emb_ndim
            else "none",
        ),
        ("halting", f"{rule[c.halt_rule]}, at most {c.halt_max_steps} steps"),
        ("parameters", f"{model.num_parameters():,}"),
        ("stored dtype", str(model.compute_dtype).removeprefix("torch.")),
    ]
    if provenance.get("source"):
        rows.append(("source", json.dumps(provenance["source"])))
    if provenance.get("command"):
        recipe = provenance.get("recipe", {}).get("name", "?")
        rows.append(("trained with", f"{provenance['command']} (recipe {recipe}, step {provenance.get('step')})"))
    if provenance.get("puzzle_id_map"):
        rows.append(
            (
                "puzzle ids",
                f"sliced from {provenance.get('sliced_from')}: new id i = old id puzzle_id_map[i] (see --json)",
            )
        )
    for key, value in rows:
        table.add_row(key, value)
    console.print(table)


@app.command()
def doctor(
    engine: Path | None = typer.Option(
        None, "--engine", help="Also build and load a TensorRT engine from this export directory."
    ),
    export: Path | None = typer.Option(
        None, "--export", help="Also open this export as `--backend auto` does and say what it chose and why."
    ),
    measure: bool = typer.Option(
        False, "--measure", help="With --export: measure every candidate again, whatever the export remembers."
    ),
    batch: int | None = typer.Option(
        None, "--batch", help="With --export: the solver's batch (auto chooses per width) [64; an export --batch N: N]."
    ),
) -> None:
    """Show what this machine can run: the CPU, torch, ONNX Runtime providers, OpenVINO and its
    native precisions, TensorRT, the GPU, and what `--backend auto` runs here.

    With `--engine EXPORT_DIR`, build a TensorRT engine from the export and load it back: the check
    that the engine path works here (CI has no GPU or TensorRT). With `--export EXPORT_DIR`, open it
    as solve does (a lower precision is checked first, every candidate timed) and report the choice
    with its figures; with `--measure` it measures again instead of reading back a remembered choice.
    """
    from trm_edge.app.doctor import check_engine, environment_table

    if measure and export is None:
        raise TrmEdgeError("--measure goes with --export DIR: doctor --export DIR --measure")
    console.print(environment_table())
    if export is not None:
        from trm_edge.app.doctor import choice_report
        from trm_edge.contract.export_dir import read_metadata
        from trm_edge.runtime.solver import Solver, slots_for

        solver = Solver.load(export, slots=slots_for(read_metadata(export), batch, "--batch"), measure=measure)
        for line in choice_report(export, solver):
            console.print(line, highlight=False)
    if engine is not None:
        check_engine(engine, console)


@app.command("slice-puzzles")
def slice_puzzles(
    checkpoint: Path = typer.Argument(..., help="A trm-edge checkpoint with a puzzle embedding."),
    output: Path = typer.Option(..., "-o", "--output", help="Where to write the sliced checkpoint."),
    ids: str | None = typer.Option(None, "--ids", help="Identifiers to keep, in order: 0,5,10-12."),
    tasks: Path | None = typer.Option(
        None, "--tasks", help="Keep every version of the ARC tasks in this file (Kaggle challenges or one task)."
    ),
    match: str | None = typer.Option(None, "--match", help="Keep the ids whose names match this regex."),
    identifiers: Path | None = typer.Option(
        None, "--identifiers", help="Names from this official identifiers.json instead of the checkpoint's."
    ),
) -> None:
    """Keep only the puzzle-embedding rows you serve (new id i = old id keep[i]; the map and the names
    of the kept rows are stored)."""
    from trm_edge.puzzle_slice import (
        checkpoint_names,
        ids_matching,
        ids_of_tasks,
        parse_ids,
        read_names,
        slice_puzzle_embeddings,
    )

    if sum(x is not None for x in (ids, tasks, match)) != 1:
        raise TrmEdgeError("give one of --ids, --tasks or --match")
    check_output_file(output, None, checkpoint, tasks, identifiers, makes_folders=True)
    if ids is not None:
        keep = parse_ids(ids)
    else:
        names = read_names(identifiers) if identifiers is not None else checkpoint_names(checkpoint)
        if tasks is not None:
            from trm_edge.tasks.arc_tasks import read_arc_tasks

            keep = ids_of_tasks(names, [t.name for t in read_arc_tasks(tasks)])
        else:
            keep = ids_matching(names, str(match))  # the one given: --ids and --tasks are not
    path = slice_puzzle_embeddings(checkpoint, keep, output, read_names(identifiers) if identifiers else None)
    before, after = checkpoint.stat().st_size, path.stat().st_size
    console.print(f"wrote {path}: {len(keep):,} puzzle ids kept, {before / 1e6:.1f} MB -> {after / 1e6:.1f} MB")


@app.command()
def demo(
    out: Path = typer.Option(Path("trm-edge-demo"), "-o", "--out", help="Folder for the export, plot and figures."),
    puzzles: int = typer.Option(128, "--puzzles", help="Held-out puzzles to measure (at most 1000)."),
    threads: int | None = typer.Option(None, "--threads", help="CPU threads for ONNX Runtime and PyTorch."),
    task: str = typer.Option("sudoku", "--task", help="Which task's default model: sudoku (9x9) | maze (10x10)."),
    model: str | None = typer.Option(
        None, "--model", help="A shipped model by name, instead of the task's default: sudoku-small | maze-small."
    ),
) -> None:
    """Export a shipped model, solve held-out puzzles with the runtime, compare with PyTorch.

    Needs the `cpu` and `torch` extras (export and the PyTorch comparison); about a minute on 2 cores.
    """
    from trm_edge.shipped import shipped_model

    shipped_model(model or task)  # an unknown task or model fails here, before any work or heavy import
    check_output_folder(out)
    from trm_edge.app.demo import run_demo

    out.mkdir(parents=True, exist_ok=True)
    run_demo(out, console, puzzles=puzzles, threads=threads, model=model or task)


app.add_typer(data_app, name="data")
app.command("train")(train_command)


class ExportCommand(TyperCommand):
    """`trm-edge export`: its help ends with every format and its options, read from the table when
    the help is shown, so a format registered after start-up (register_format) is listed too."""

    def format_help(self, ctx: Any, formatter: Any) -> None:  # click's, which typer now vendors
        self.epilog = options_help()
        super().format_help(ctx, formatter)


# The format's own options come after the command's (export/format_table.py parses them).
app.command("export", cls=ExportCommand,
            context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(export_command)
app.command("build-engine")(build_engine_command)
app.command("solve")(solve_command)
app.command("solve-arc")(solve_arc_command)
app.command("bench")(bench_command)
app.command("calibrate")(calibrate_command)
app.command("serve")(serve_command)
app.command("guard")(guard_command)


def run() -> None:
    """The `trm-edge` entry point: the app behind the one error handler."""
    run_app(app)


if __name__ == "__main__":
    run()
