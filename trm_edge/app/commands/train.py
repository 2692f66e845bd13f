"""`trm-edge data ...` (build datasets) and `trm-edge train` (run a recipe)."""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from trm_edge.app.cli_common import console
from trm_edge.app.command_classes import App
from trm_edge.errors import TrmEdgeError
from trm_edge.output_paths import check_output_folder

data_app = App(
    help="Build training datasets (generated offline, or from the official files).",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)


def _range(text: str, what: str) -> tuple[int, int]:
    lo, sep, hi = text.partition("-")
    try:
        return (int(lo), int(hi)) if sep else (int(lo), int(lo))
    except ValueError:
        raise TrmEdgeError(f"{what} must look like 30-40 or 35, got {text!r}") from None


@contextmanager
def _progress(what: str, total: int) -> Iterator[Callable[[int], None]]:
    with Progress(TextColumn(what), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console, transient=False) as progress:
        task = progress.add_task(what, total=total)
        yield lambda n: progress.advance(task, n)


def _generate(task: str, out: Path, train: int, test: int, **options: object) -> None:
    """Build a generated dataset with a progress bar (the `data` commands and recipes' `data.generate`);
    ranges the generator cannot meet become a clear error."""
    if task == "sudoku":
        from trm_edge.train.build_sudoku import build_generated_sudoku as build
    elif task == "maze":
        from trm_edge.train.build_maze import build_generated_maze as build
    else:
        raise TrmEdgeError(f"trm-edge generates sudoku or maze data, not {task!r}: pass --data DIR")
    with _progress(f"generating {task}s", train + test) as advance:
        build(out, train, test, progress=advance, **options)


def _built(path: Path) -> None:
    from trm_edge.train.dataset import load_info

    info = load_info(path)
    sizes = ", ".join(f"{name} {n:,}" for name, n in info.splits.items())
    console.print(f"wrote {path}: {info.task}, {sizes} (seq_len {info.seq_len}, vocab {info.vocab_size}, "
                  f"{info.num_puzzle_identifiers:,} puzzle ids)")


@data_app.command("sudoku-generate")
def sudoku_generate(
    out: Path = typer.Option(..., "-o", "--output", help="Dataset folder to write."),
    train: int = typer.Option(20000, "--train", help="Training puzzles."),
    test: int = typer.Option(1000, "--test", help="Held-out test puzzles (none shared with training)."),
    givens: str = typer.Option("30-40", "--givens", help="Clue count range, e.g. 30-40 (easy) or 22-26 (hard)."),
    guesses: str = typer.Option("0-1000000", "--guesses", help="Range of search branch points needed (0: singles)."),
    seed: int = typer.Option(0, "--seed", help="Puzzle i depends only on (seed, i)."),
    augment: int = typer.Option(0, "--augment", help="Symmetry-shuffled copies added per training puzzle."),
) -> None:
    """Generate 9x9 Sudokus with unique solutions offline."""
    check_output_folder(out, replaced=True)
    _generate("sudoku", out, train, test, givens=_range(givens, "--givens"), guesses=_range(guesses, "--guesses"),
              seed=seed, augment=augment)
    _built(out)


@data_app.command("sudoku-csv")
def sudoku_csv(
    out: Path = typer.Option(..., "-o", "--output", help="Dataset folder to write."),
    train_csv: Path = typer.Option(..., "--train-csv", help="Sudoku-Extreme-style CSV (source,q,a,rating)."),
    test_csv: Path | None = typer.Option(None, "--test-csv", help="Held-out CSV of the same layout."),
    subsample: int = typer.Option(0, "--subsample", help="Draw this many training puzzles (the paper uses 1000)."),
    augment: int = typer.Option(0, "--augment", help="Shuffled copies per training puzzle (the paper uses 1000)."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Build a Sudoku dataset from Sudoku-Extreme CSV files."""
    check_output_folder(out, replaced=True)
    from trm_edge.train.build_sudoku import build_sudoku_csv

    build_sudoku_csv(out, train_csv, test_csv, subsample, augment, seed)
    _built(out)


@data_app.command("maze-generate")
def maze_generate(
    out: Path = typer.Option(..., "-o", "--output", help="Dataset folder to write."),
    train: int = typer.Option(1000, "--train"),
    test: int = typer.Option(200, "--test"),
    size: int = typer.Option(30, "--size", help="Mazes are size x size."),
    min_path: int = typer.Option(0, "--min-path", help="Shortest S-G path at least this long (default: 3 * size)."),
    seed: int = typer.Option(0, "--seed"),
    augment: bool = typer.Option(False, "--augment/--no-augment", help="Add the 7 other symmetries of each maze."),
) -> None:
    """Generate N x N mazes (random walls, one shortest path marked) offline."""
    check_output_folder(out, replaced=True)
    _generate("maze", out, train, test, size=size, min_path=min_path or 3 * size, seed=seed, augment=augment)
    _built(out)


@data_app.command("maze-csv")
def maze_csv(
    out: Path = typer.Option(..., "-o", "--output", help="Dataset folder to write."),
    train_csv: Path = typer.Option(..., "--train-csv", help="Maze-Hard-style CSV (source,question,answer,rating)."),
    test_csv: Path | None = typer.Option(None, "--test-csv"),
    augment: bool = typer.Option(False, "--augment/--no-augment", help="Add the 7 other symmetries (paper: off)."),
) -> None:
    """Build a maze dataset from Maze-Hard CSV files."""
    check_output_folder(out, replaced=True)
    from trm_edge.train.build_maze import build_maze_csv

    build_maze_csv(out, train_csv, test_csv, augment)
    _built(out)


@data_app.command("arc")
def arc(
    out: Path = typer.Option(..., "-o", "--output", help="Dataset folder to write."),
    source: Path = typer.Option(..., "--source", help="Folder of arc-agi_<subset>_challenges/_solutions.json."),
    subsets: str = typer.Option("training,evaluation,concept", "--subsets", help="Comma-separated subsets."),
    test_set: str = typer.Option("evaluation", "--test-set", help="Subset whose test pairs form the test split."),
    augment: int = typer.Option(1000, "--augment", help="Augmented versions per task (dihedral x colours)."),
    seed: int = typer.Option(0, "--seed"),
    max_tasks: int = typer.Option(0, "--max-tasks", help="Only the first N tasks (by name) of each subset; 0: all."),
) -> None:
    """Build an ARC dataset (ARC-AGI-1: training,evaluation,concept / evaluation; ARC-AGI-2:
    training2,evaluation2,concept / evaluation2). Each version's name (official `identifiers.json`
    grammar) is kept: checkpoints trained on it answer ARC tasks by vote (`trm-edge solve-arc`)."""
    check_output_folder(out, replaced=True)
    from trm_edge.train.build_arc import build_arc
    from trm_edge.train.sources import read_arc_combined

    names = [s.strip() for s in subsets.split(",") if s.strip()]
    if max_tasks < 0:
        raise TrmEdgeError(f"--max-tasks must be 0 (all) or more, got {max_tasks}")
    counts = [len(read_arc_combined(source, name)) for name in {*names, test_set}]
    tasks = sum(min(n, max_tasks) if max_tasks else n for n in counts)
    with _progress("augmenting ARC tasks", tasks) as advance:
        build_arc(out, source, names, test_set, augment, seed, max_tasks=max_tasks, progress=advance)
    _built(out)


@data_app.command("info")
def data_info(path: Path = typer.Argument(..., help="Dataset folder.")) -> None:
    """Show what a built dataset holds and how it was built."""
    from dataclasses import asdict

    from trm_edge.train.dataset import load_info

    info = asdict(load_info(path))
    names = info["extra"].get("puzzle_names")
    if names:  # one per puzzle identifier: a million for a full ARC build
        info["extra"]["puzzle_names"] = f"{len(names)} names, {names[1]!r} ... {names[-1]!r}"
    console.print_json(json.dumps(info))


def train_command(
    recipe: str | None = typer.Argument(None, help="Recipe name (see --list) or YAML file."),
    data: Path | None = typer.Option(None, "--data", help="Dataset folder (default: the recipe's data)."),
    out: Path | None = typer.Option(None, "-o", "--output", help="Run folder (default: runs/<recipe name>)."),
    overrides: list[str] = typer.Option([], "--set", help="Override a recipe field: --set train.lr=3e-4."),
    resume: Path | None = typer.Option(
        None, "--resume", help="Training state file or run folder to resume (to start from a checkpoint's weights, "
        "shipped:NAME included: --set train.init=CHECKPOINT)."
    ),
    device: str | None = typer.Option(None, "--device", help="cpu | cuda | cuda:N (default: cuda if present)."),
    list_recipes: bool = typer.Option(False, "--list", help="List the shipped recipes and exit."),
) -> None:
    """Train a TRM or HRM from a recipe; run under `torchrun --nproc-per-node N` for several processes.

    Writes `OUT/checkpoints/step_N.safetensors` (+ `.state.safetensors` to resume), `OUT/final.safetensors`
    (EMA weights when EMA is on; `trm-edge export` takes it as it is), `OUT/metrics.jsonl`, `OUT/curves.png`.
    """
    from trm_edge.train.recipe import available_recipes, load_recipe

    if list_recipes:
        for name in available_recipes():
            r = load_recipe(name)
            console.print(f"[bold]{name}[/]: {r.description}")
        return
    if recipe is None:
        raise TrmEdgeError("name a recipe (one of: " + ", ".join(available_recipes()) + ") or a recipe YAML file")
    from trm_edge.train.trainer import Trainer

    r = load_recipe(recipe, overrides)
    out = out or Path("runs") / r.name
    check_output_folder(out)  # before the recipe's data is built into it, not after
    data = data or _recipe_data(r.data, out)
    command = "trm-edge " + shlex.join(sys.argv[1:])
    summary = Trainer(r, data, out, resume=resume, device=device, command=command).fit()
    if "checkpoint" in summary:
        console.print(f"checkpoint: {summary['checkpoint']}  curves: {summary.get('plot')}  metrics: "
                      f"{out / 'metrics.jsonl'}")


def _recipe_data(spec: dict[str, Any], out: Path) -> Path:
    """The dataset a recipe names: `data.path`, or `data.generate` built into OUT/data once."""
    if "path" in spec:
        return Path(spec["path"])
    gen = dict(spec.get("generate") or {})
    if not gen:
        raise TrmEdgeError("this recipe names no data: pass --data DIR (build one with `trm-edge data ...`)")
    target = out / "data"
    if (target / "dataset.json").is_file():
        return target
    _generate(gen.pop("task", "sudoku"), target, int(gen.pop("train")), int(gen.pop("test")), **gen)
    return target
