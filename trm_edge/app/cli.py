"""The `trm-edge` command. Each stage's commands import their heavy dependencies (torch, onnx,
onnxruntime) lazily, so the runtime commands work on a device that has no torch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from trm_edge import __version__
from trm_edge.app.cli_common import BACKEND, SLOTS, THREADS, console, err_console, run_app, solver_options
from trm_edge.app.command_classes import App, Command
from trm_edge.app.commands.bench import bench_command
from trm_edge.app.commands.export import build_engine_command, export_command
from trm_edge.app.commands.info import info_command
from trm_edge.app.commands.serve import guard_command, serve_command
from trm_edge.app.commands.solve import calibrate_command, solve_command
from trm_edge.app.commands.solve_arc import solve_arc_command
from trm_edge.app.commands.train import data_app, train_command
from trm_edge.errors import TrmEdgeError
from trm_edge.export.format_table import options_help
from trm_edge.output_paths import check_output_file, check_output_folder
from trm_edge.shipped import checkpoint_path, shipped_names

app = App(
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


# convert --set KEY=VALUE: what the tensors cannot tell, by the official config's names (int or the choices).
CONVERT_KEYS: dict[str, type | tuple[str, ...]] = {
    "seq_len": int, "vocab_size": int, "num_puzzle_identifiers": int, "H_cycles": int, "L_cycles": int,
    "num_heads": int, "pos_encodings": ("rope", "learned", "none"), "halt_max_steps": int, "task": str,
}


def convert_settings(pairs: list[str]) -> dict[str, Any]:
    """convert's --set KEY=VALUE pairs as overrides of the official config, each checked."""
    keys = ", ".join(CONVERT_KEYS)
    settings: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        kind = CONVERT_KEYS.get(key.strip())
        if not sep or kind is None or not value.strip():
            raise TrmEdgeError(f"--set {pair}: give KEY=VALUE with KEY one of {keys}")
        value = value.strip()
        if kind is int:
            try:
                settings[key.strip()] = int(value)
            except ValueError:
                raise TrmEdgeError(f"--set {pair}: {key.strip()} is a whole number, e.g. {key.strip()}=2") from None
        elif isinstance(kind, tuple) and value not in kind:
            raise TrmEdgeError(f"--set {pair}: {key.strip()} is one of {', '.join(kind)}")
        else:
            settings[key.strip()] = value
    return settings


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
    settings: list[str] = typer.Option(
        [], "--set", metavar="KEY=VALUE",
        help="What the tensors and files do not say, or a value to override (repeat it): "
        + ", ".join(CONVERT_KEYS) + " (pos_encodings: rope | learned | none; task: sudoku | maze | arc | generic).",
    ),
) -> None:
    """Import an official TinyRecursiveModels / HRM checkpoint as a trm-edge .safetensors.

    The pickle is read with weights_only=True (no code runs). What the tensors imply is inferred;
    the rest comes from --config / --dataset or --set KEY=VALUE, which overrides them
    (--set H_cycles=3 --set L_cycles=6).
    """
    from trm_edge.checkpoint import save_checkpoint
    from trm_edge.convert import convert_official

    overrides = convert_settings(settings)  # a bad key fails before the checkpoint is read
    if output.suffix != ".safetensors":
        raise TrmEdgeError(f"-o {output}: a trm-edge checkpoint is a .safetensors file; give a name ending in it")
    check_output_file(output, None, checkpoint, config, dataset, identifiers, makes_folders=True)
    model = convert_official(checkpoint, config, dataset, overrides, identifiers)
    save_checkpoint(model, output, info=model.info)
    names = model.info.get("puzzle_names")
    named = f", {len(names):,} puzzle names" if names else ""
    console.print(f"wrote {output} ({model.config.arch.upper()}, {model.num_parameters():,} parameters{named})")


app.command("info")(info_command)


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
    backend: str = BACKEND,
    threads: int | None = THREADS,
    slots: int | None = SLOTS,
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON on stdout instead of tables."),
) -> None:
    """Show what this machine can run: the CPU, torch, ONNX Runtime providers, OpenVINO and its
    native precisions, TensorRT, the GPU, and what `--backend auto` runs here.

    With `--engine EXPORT`, build a TensorRT engine from the export and load it back: the check
    that the engine path works here (CI has no GPU or TensorRT). With `--export EXPORT`, open it
    as solve does (with `--backend`, `--threads` and `--slots` as solve takes them; a lower precision
    is checked first, every candidate timed) and report the choice with its figures; with
    `--measure` it measures again instead of reading back a remembered choice.
    """
    from trm_edge.app.doctor import check_engine, environment_rows, environment_table

    if export is None and (measure or backend != "auto" or threads is not None or slots is not None):
        raise TrmEdgeError("--measure, --backend, --threads and --slots say how to open an export: give --export "
                           "DIR too")
    report: dict[str, Any] = {"environment": dict(environment_rows())}
    if not as_json:
        console.print(environment_table())
    if export is not None:
        from trm_edge.app.doctor import choice_record, choice_report
        from trm_edge.contract.export_dir import read_metadata
        from trm_edge.runtime.solver import Solver, slots_for

        meta = read_metadata(export)
        options = solver_options(backend, threads=threads, slots=slots_for(meta, slots, "--slots"), measure=measure)
        solver = Solver.load(export, options, meta=meta)
        report["export"] = choice_record(export, solver)
        if not as_json:
            for line in choice_report(export, solver):
                console.print(line, highlight=False)
    if engine is not None:
        report["engine"] = str(check_engine(engine, err_console if as_json else console))
    if as_json:
        print(json.dumps(report, indent=2))


@app.command("slice-puzzles")
def slice_puzzles(
    given: str = typer.Argument(
        ..., metavar="CHECKPOINT", help="A trm-edge checkpoint with a puzzle embedding, or shipped:NAME."
    ),
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
    checkpoint = checkpoint_path(given)
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
    output: Path = typer.Option(
        Path("trm-edge-demo"), "-o", "--output", help="Folder for the export, plot and figures."
    ),
    puzzles: int = typer.Option(128, "--puzzles", help="Held-out puzzles to measure (at most 1000)."),
    threads: int | None = typer.Option(None, "--threads", help="CPU threads for ONNX Runtime and PyTorch."),
    task: str = typer.Option("sudoku", "--task", help="Which task's default model: sudoku (9x9) | maze (10x10)."),
    model: str | None = typer.Option(
        None, "--model", help=f"A shipped model by name, instead of the task's default: {shipped_names()}."
    ),
) -> None:
    """Export a shipped model, solve held-out puzzles with the runtime, compare with PyTorch.

    Needs the `cpu` and `torch` extras (export and the PyTorch comparison); about a minute on 2 cores.
    """
    from trm_edge.shipped import shipped_model

    shipped_model(model or task)  # an unknown task or model fails here, before any work or heavy import
    check_output_folder(output)
    from trm_edge.app.demo import run_demo

    output.mkdir(parents=True, exist_ok=True)
    run_demo(output, console, puzzles=puzzles, threads=threads, model=model or task)


app.add_typer(data_app, name="data")
app.command("train")(train_command)


class ExportCommand(Command):
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
