"""`trm_edge.export.export`: the one export call, the library's and `trm-edge export`'s.

    from trm_edge.export import export
    export("model.safetensors", "model_export")                        # onnx: an export directory
    export("shipped:sudoku-small", "sudoku_export", format="solve")    # + solve.onnx, checked
    export("model.safetensors", "site", format="web")                  # a page that solves in a browser
    export("model.safetensors", "model_export", data="held_out.npz")   # validated and calibrated on them
    export("model.safetensors", "repo", format="triton", settings={"max_batch": 64})

The command parses its options into these arguments and calls this; nothing of an export is
composed anywhere else. The export stage writes the format (export/formats.py) in a staging folder
that replaces the output whole or not at all; its `finish` step runs what needs the runtime, which
a stage never imports: the halting calibration on `data`, then solve.onnx and its check against
the runtime (app/solve_graph.py) where the format's row says so or `solve_graph=True`. Each row of
the format table (export/format_table.py) lists what this writes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from trm_edge.errors import TrmEdgeError
from trm_edge.export.format_table import get_format
from trm_edge.output_paths import check_output_folder

if TYPE_CHECKING:
    from trm_edge.contract.held_out import LabelledPuzzles
    from trm_edge.export.formats import OnnxOptions

Step = Callable[[Path, Console], object]


def export(
    checkpoint: str | Path,
    output: str | Path | None = None,
    format: str = "onnx",
    onnx: OnnxOptions | None = None,
    console: Console | None = None,
    settings: Mapping[str, Any] | None = None,
    *,
    data: str | Path | None = None,
    solve_graph: bool = False,
) -> Path:
    """Export `checkpoint` (a .safetensors file or shipped:NAME) as `format`; returns the export
    directory, or the repository or site the format writes. `onnx`: the options every format takes
    (precision, opset, batch, validation; `held_out` puzzles or `data`, a puzzle file, validate the
    export and, with `calibrate`, choose its default halting); `settings`: the format's own options by
    name (the table's defaults fill the rest); `solve_graph`: also solve.onnx. For triton,
    `checkpoint` may also be an existing export directory. Raises TrmEdgeError."""
    entry = get_format(format)  # an unknown format, or shipped model, fails before the heavy imports
    shipped = str(checkpoint).startswith("shipped:")
    if shipped:
        from trm_edge.shipped import checkpoint_path

        checkpoint = checkpoint_path(checkpoint)
    checkpoint = Path(checkpoint)
    from trm_edge.export.exporter import default_output_dir
    from trm_edge.export.formats import OnnxOptions, export_format

    onnx, console = onnx or OnnxOptions(), console or Console(quiet=True)
    if shipped and output is None:  # the usual name, but in the working folder: never beside the package's file
        output = Path(default_output_dir(checkpoint, onnx.precision).name)
    if output is not None or entry.output is None:  # else export_format says -o is needed
        # Built beside it and swapped in (a repository or site too): refused here, before any work.
        check_output_folder(Path(output or default_output_dir(checkpoint, onnx.precision)), replaced=True)
    held_out, held_out_name = onnx.held_out, onnx.held_out_name
    if data is not None and held_out is None and not (format == "triton" and checkpoint.is_dir()):
        held_out, held_out_name = read_held_out(checkpoint, Path(data)), Path(data).name
    steps: list[Step] = []
    if onnx.calibrate and held_out is not None:
        steps.append(calibrate_on(held_out, held_out_name))
    if onnx.finish is not None:
        steps.append(onnx.finish)
    if solve_graph or entry.solve_graph:  # after calibration: the graph halts by the export's default policy
        steps.append(_solve_graph_step(onnx))
    onnx = replace(onnx, held_out=held_out, held_out_name=held_out_name, finish=_in_turn(steps) if steps else None)
    return export_format(checkpoint, output, format, onnx, console, settings)


def _solve_graph_step(onnx: OnnxOptions) -> Step:
    """solve.onnx, refused before the export does its work where it cannot be made."""
    from trm_edge.app.solve_graph import half_precision_refused, write_solve_graph

    refused = half_precision_refused(onnx.precision)
    if refused is not None:
        raise refused
    if onnx.batch is not None:
        raise TrmEdgeError("--solve-graph needs a dynamic-batch export (leave out --static/--batch)")
    return write_solve_graph


def _in_turn(steps: Sequence[Step]) -> Callable[[Path, Console], None]:
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
