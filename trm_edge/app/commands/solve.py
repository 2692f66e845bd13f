"""`trm-edge solve`, `trm-edge bench` and `trm-edge calibrate`: the runtime's commands (no torch)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import typer
from rich.table import Table

from trm_edge.app.cli_common import BACKEND, HALT, MAX_STEPS, PRECISION, console, err_console
from trm_edge.atomic import atomic_file
from trm_edge.errors import TrmEdgeError
from trm_edge.output_paths import check_output_file, check_output_folder

if TYPE_CHECKING:
    from trm_edge.contract.metadata import ExportMetadata
    from trm_edge.runtime.solver import Result, Solver


NO_PUZZLES = "no puzzles: give them as arguments, with --file (- for standard input), or as tokens with --npz"


def _halt(halt: str, fixed_steps: int | None) -> str:
    return f"fixed:{fixed_steps}" if fixed_steps is not None else halt


def solve_command(
    model_dir: Path = typer.Argument(..., help="Export directory (from trm-edge export)."),
    puzzles: list[str] = typer.Argument(None, help="Puzzles as text (a Sudoku is 81 characters, '.' for blanks)."),
    file: Path | None = typer.Option(
        None, "--file", "-f", help="Read puzzles from a file (lines, CSV, ARC JSON); - is standard input, which is "
        "also read when it is a pipe and no puzzle is given."
    ),
    backend: str = BACKEND,
    precision: str = PRECISION,
    batch: int | None = typer.Option(
        None, "--batch", help="Puzzles in flight at once (slots) [64; an export --batch N: N, the only width it runs]."
    ),
    max_steps: int | None = MAX_STEPS,
    fixed_steps: int | None = typer.Option(None, "--fixed-steps", help="Run exactly N steps (official eval)."),
    halt: str = HALT,
    puzzle_id: int = typer.Option(0, "--puzzle-id", help="Puzzle identifier for every puzzle (ARC task)."),
    as_json: bool = typer.Option(False, "--json", help="Print results as JSON."),
    npz: Path | None = typer.Option(None, "--npz", help="Raw tokens in: 'inputs' (B, seq) [+ 'puzzle_identifiers']."),
    out: Path | None = typer.Option(
        None, "--out", help="With --npz: write answers, steps, q_halt_logits, verified (1/0, -1: cannot verify) here."
    ),
    show: int = typer.Option(3, "--show", help="Grids (ARC: tasks) to show at most."),
    arc_tasks: Path | None = typer.Option(
        None, "--arc-tasks", help="ARC tasks (Kaggle challenges JSON, one task JSON or a folder): vote over versions."
    ),
    solutions: Path | None = typer.Option(None, "--solutions", help="With --arc-tasks: Kaggle solutions (pass@k)."),
    votes: str = typer.Option("all", "--votes", help="With --arc-tasks: versions per test input, N or all."),
    unknown_tasks: str = typer.Option(
        "error", "--unknown-tasks", help="With --arc-tasks, for a task the export has no version of: error | identity."
    ),
    submission: Path | None = typer.Option(None, "--submission", help="With --arc-tasks: write the Kaggle JSON here."),
    versions: int = typer.Option(
        1, "--versions", help="Test-time versions per puzzle (Sudoku, maze): a puzzle that does not verify is "
        "asked again relabelled/reflected, up to N versions; the first verified answer wins."
    ),
    seed: int = typer.Option(0, "--seed", help="With --versions: the seed the versions are drawn from."),
) -> None:
    """Solve puzzles with an exported model; renders the solved grids (givens bold, filled cyan).

    Puzzles are the arguments, those read from `--file` (`-`: standard input; on a terminal,
    type them and end with Ctrl-D), or, when none is given and standard input is a pipe or a file,
    standard input, as `cat` reads it: `cat puzzles.txt | trm-edge solve DIR`.

    ARC: `--arc-tasks CHALLENGES.json` asks every test input in each version of its task the export
    knows (identity first, `--votes N` of them), votes as the official evaluation does, and writes
    the two best grids per input as a Kaggle submission (`--submission OUT.json`)."""
    from trm_edge.contract.export_dir import read_metadata
    from trm_edge.runtime.solver import Solver, slots_for

    if npz is not None and out is None:
        raise TrmEdgeError("--npz needs --out OUT.npz for the answers")
    if out is not None:
        check_output_file(out, ".npz", npz, file)  # before solving anything, not after
    if arc_tasks is None and (solutions or submission or votes != "all" or unknown_tasks != "error"):
        raise TrmEdgeError("--solutions, --votes, --unknown-tasks and --submission go with --arc-tasks")
    if arc_tasks is not None and (npz is not None or file is not None or puzzles):
        raise TrmEdgeError("--arc-tasks reads the puzzles itself: leave out --npz, --file and puzzle arguments")
    if submission is not None:
        check_output_file(submission, ".json", arc_tasks, solutions)
    # The puzzles first, where they are all known: a solver opened for fewer slots than --batch times
    # auto's candidates at the width the work runs at (one puzzle: one slot, not 16).
    # (With --versions each puzzle may have several versions in flight: the solver keeps --batch.)
    meta = read_metadata(model_dir)
    batch = slots_for(meta, batch, "--batch")  # a fixed-batch export runs its batch, fewer puzzles padded
    work = _read_work(meta, puzzles, file, npz, puzzle_id) if arc_tasks is None else None
    slots = min(batch, len(work)) if work and versions == 1 else batch
    solver = Solver.load(
        model_dir, backend=backend, slots=slots, max_steps=max_steps,
        halt=_halt(halt, fixed_steps), precision=precision, meta=meta,
    )
    if arc_tasks is not None:
        from trm_edge.app.commands.solve_arc import parse_votes, run_tasks
        from trm_edge.tasks.arc_tasks import read_arc_tasks

        tasks = read_arc_tasks(arc_tasks, solutions)
        run_tasks(solver, tasks, arc_tasks.name, parse_votes(votes), unknown_tasks, submission, as_json)
        return
    if versions != 1:
        _solve_versions(solver, versions, seed, work or [], out if npz is not None else None, as_json, show)
        return
    if npz is not None and out is not None:
        results = solver.solve(work or [])
        _write_answers(
            out, results,
            q_halt_logits=np.array([r.halt_logit for r in results], dtype=np.float32),
            verified=np.array([r.verified_code for r in results], dtype=np.int8),
        )
        console.print(f"wrote {out} ({len(results)} puzzles, backend {solver.engine})")
        return
    if not work:
        raise TrmEdgeError(NO_PUZZLES)
    results = solver.solve(work)
    codec = solver.codec
    if as_json:
        print(json.dumps([_result_json(r) for r in results], indent=2))
        return
    for r in results[:show]:
        console.print(
            f"puzzle {r.index}: {r.steps} steps, halting confidence {r.halt_confidence:.2f}, "
            f"{r.latency_s * 1e3:.1f} ms{_verdict(r.verified)}"
        )
        console.print(codec.render(r.puzzle, r.answer) if codec else str(r.answer.tolist()))
        console.print()
    summary = f"{len(results)} puzzles, mean {np.mean([r.steps for r in results]):.2f} steps"
    if solver.verifier is not None:
        verified = sum(bool(r.verified) for r in results)
        summary += f", {verified} verified solutions ({100 * verified / len(results):.1f}%)"
    engine = solver.engine
    console.print(summary + f" [dim](backend {engine}, halting {solver.policy.name})[/]")


def _read_work(meta: ExportMetadata, puzzles: list[str] | None, file: Path | None, npz: Path | None,
               puzzle_id: int) -> list[Any]:
    """The puzzles a plain solve runs (the --npz tokens, else the texts given and read from --file, or
    from a pipe when there are none), read with the export's task codec before any backend opens."""
    from trm_edge.runtime.export_task import task_codec
    from trm_edge.runtime.puzzle_files import STDIN, read_puzzles, stdin_is_piped

    if npz is not None:
        return _npz_puzzles(npz, meta.model.seq_len, meta.model.vocab_size)
    texts = list(puzzles or [])
    if file is None and not texts and stdin_is_piped():  # `... | trm-edge solve DIR`
        file = Path(STDIN)
    if file is not None:
        if str(file) == STDIN and sys.stdin is not None and sys.stdin.isatty():
            # Else `--file -` typed at a terminal waits, saying nothing, for input the user may not know it wants.
            end = "Ctrl-Z, Enter" if os.name == "nt" else "Ctrl-D"
            err_console.print(f"reading puzzles from standard input (end with {end})", highlight=False)
        texts += read_puzzles(file, task_codec(meta))
    return [(t, puzzle_id) for t in texts]


def _npz_puzzles(npz: Path, seq_len: int, vocab_size: int) -> list[tuple[np.ndarray, int]]:
    from trm_edge.contract.held_out import load_puzzles

    data = load_puzzles(npz, seq_len, vocab_size)
    return list(zip(data.inputs, data.puzzle_identifiers.tolist(), strict=True))


def _write_answers(out: Path, results: list[Any], **columns: np.ndarray) -> None:
    """answers and steps per puzzle, and `columns`, to an .npz (atomically)."""
    # Any-valued: numpy's stubs would match a dict of arrays against savez's allow_pickle flag.
    arrays: dict[str, Any] = {"answers": np.stack([r.answer for r in results]),
                              "steps": np.array([r.steps for r in results]), **columns}
    with atomic_file(out) as handle:
        np.savez(handle, **arrays)


def _solve_versions(
    solver: Solver, versions: int, seed: int, work: list[Any], out: Path | None, as_json: bool, show: int,
) -> None:
    """`solve --versions N`: test-time versions, the first verified answer wins (runtime/versions.py).
    `work`: what `_read_work` read; `out`: where --npz answers go (None for puzzles given as text)."""
    from trm_edge.runtime.versions import VersionedRun

    run = VersionedRun(solver, versions, seed)
    if out is not None:  # --npz tokens (the command checked that --npz comes with --out)
        results = run.solve(work)
        _write_answers(
            out, results,
            verified=np.array([int(r.verified) for r in results], dtype=np.int8),
            version=np.array([r.version for r in results], dtype=np.int32),
            version_steps=np.array([r.version_steps for r in results], dtype=np.int32),
            versions_run=np.array([r.versions_run for r in results], dtype=np.int32),
        )
        console.print(f"wrote {out} ({len(results)} puzzles, up to {versions} versions each)")
        return
    if not work:
        raise TrmEdgeError(NO_PUZZLES)
    results = run.solve([solver.encode(puzzle, i) for i, puzzle in enumerate(work)])
    if as_json:
        print(json.dumps([{"index": r.index, "answer": r.text, "verified": r.verified, "rule": r.rule,
                           "version": r.version, "steps": r.steps, "version_steps": r.version_steps,
                           "versions_run": r.versions_run} for r in results], indent=2))
        return
    codec = solver.codec
    for r in results[:show]:
        by = "as given" if r.version == 0 else f"by version {r.version}"
        console.print(f"puzzle {r.index}: {r.rule} {by} after {r.versions_run} version(s), "
                      f"{r.version_steps} version-steps{_verdict(r.verified)}")
        console.print(codec.render(r.puzzle, r.answer) if codec else str(r.answer.tolist()))
        console.print()
    verified = sum(r.verified for r in results)
    console.print(f"{len(results)} puzzles, {verified} verified solutions ({100 * verified / len(results):.1f}%), "
                  f"mean {np.mean([r.version_steps for r in results]):.2f} version-steps "
                  f"[dim](up to {versions} versions, backend {solver.engine})[/]")


def _verdict(verified: bool | None) -> str:
    if verified is None:
        return ""
    return "  [green]verified solution[/]" if verified else "  [red]not verified: not a solution[/]"


def _result_json(r: Result) -> dict[str, Any]:
    return {
        "index": r.index,
        "answer": r.text,
        "steps": r.steps,
        "verified": r.verified,
        "halt_confidence": _finite(r.halt_confidence),
        "latency_ms": round(r.latency_s * 1e3, 3),
    }


def _finite(value: float) -> float | None:
    """JSON has no NaN: a non-finite confidence (a broken export) is written as null."""
    return round(value, 4) if np.isfinite(value) else None


def calibrate_command(
    model_dir: Path = typer.Argument(..., help="Export directory (from trm-edge export)."),
    data: Path = typer.Option(
        ..., "--data", help="Held-out puzzles (.npz: inputs [+labels] or puzzles [+solutions]); labels optional."
    ),
    max_loss: float = typer.Option(
        0.005, "--max-loss", help="Accuracy the default may give up against fixed max steps (0.005 = half a point)."
    ),
    backend: str = BACKEND,
    precision: str = PRECISION,
    batch: int | None = typer.Option(
        None, "--batch", help="Batch for the recording run [64; an export --batch N: N, the only width it runs]."
    ),
    plot: Path | None = typer.Option(None, "--plot", help="Write the accuracy-vs-steps curve here (.png)."),
) -> None:
    """Choose the halting policy on held-out data and store it in trm_edge.json as the default.

    Every puzzle runs max_steps once; each policy (model rule, probability thresholds, stable
    answers, both; verified ones where the task checks its answers) is replayed on that recording.
    Answers count as right by the labels, else by verification, else by agreement with the
    model's own max-steps answer. A quarter of the puzzles is held out: the default becomes the
    policy with the fewest mean steps whose loss against max steps, plus one standard error, is
    within --max-loss on the rest, and its figure on the held-out quarter is shown beside it.
    """
    from rich.progress import Progress

    from trm_edge.contract.export_dir import read_metadata
    from trm_edge.contract.held_out import load_puzzles
    from trm_edge.runtime.calibrate import calibrate, describe_choice, store
    from trm_edge.runtime.solver import Solver, slots_for

    if not 0 <= max_loss < 1:  # NaN fails this too
        raise TrmEdgeError(f"--max-loss is a share of puzzles in [0, 1) (0.005 = half a point), got {max_loss}")
    check_output_folder(model_dir)  # the choice goes into its trm_edge.json: refused now, not after recording
    if plot is not None:
        check_output_file(plot, ".png", data)
    meta = read_metadata(model_dir)
    batch = slots_for(meta, batch, "--batch")
    solver = Solver.load(model_dir, backend=backend, slots=batch, halt="model", precision=precision, meta=meta)
    held_out = load_puzzles(data, solver.seq_len, solver.vocab_size)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("recording every step", total=len(held_out))
        result = calibrate(solver, held_out, max_loss, progress=lambda n: progress.advance(task, n))
    store(model_dir, result, data.name, solver.meta)
    console.print(calibration_table(result, data.name))
    console.print(describe_choice(result))
    if plot is not None:
        from trm_edge.runtime.plots import plot_calibration

        plot_calibration(plot, result, f"{model_dir}: halting on {data.name}")
        console.print(f"wrote {plot}")


def calibration_table(result: dict[str, Any], data_name: str) -> Table:
    """Fixed max steps, the model's rule, and the cheapest policy of each family within the loss."""
    table = Table(
        title=f"halting policies on {data_name} ({result['puzzles']} puzzles, {result['max_steps']} steps max; "
        f"right = by {result['scored_by']})"
    )
    from trm_edge.runtime.plots import policy_family

    verifies = "verified_by_step" in result
    for col in ("policy", "exact", "mean steps") + (("verified",) if verifies else ()):
        table.add_column(col, justify="right")
    shown = sorted(result["policies"], key=lambda r: r["mean_steps"])
    best_by_family: dict[str, dict] = {}
    for row in shown:
        family = policy_family(row["policy"])
        if row["loss"] <= result["max_loss"] + 1e-12 and family not in ("fixed", "model"):
            best_by_family.setdefault(family, row)
    fixed = [r for r in shown if r["policy"].startswith("fixed")]
    for row in fixed + [r for r in shown if r["policy"] == "model"] + list(best_by_family.values()):
        cells = [row["policy"], _pct(row["exact"]), f"{row['mean_steps']:.2f}"]
        table.add_row(*cells, *([_pct(row.get("verified"))] if verifies else []))
    return table


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"
