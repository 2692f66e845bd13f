"""`trm-edge solve` and `trm-edge calibrate`: the runtime's commands for puzzles (no torch)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
import typer
from rich.table import Table

from trm_edge.app.cli_common import (
    BACKEND,
    EXPORT_ARGUMENT,
    HALT,
    MAX_STEPS,
    SLOTS,
    THREADS,
    console,
    err_console,
    positive_scale,
    solver_options,
    whole_number,
)
from trm_edge.atomic import atomic_file, atomic_write
from trm_edge.errors import TrmEdgeError
from trm_edge.output_paths import check_output_file, check_output_folder

if TYPE_CHECKING:
    from trm_edge.contract.metadata import ExportMetadata
    from trm_edge.runtime.solver import Result, Solver
    from trm_edge.runtime.versions import VersionedResult

    Answer: TypeAlias = Result | VersionedResult

NO_PUZZLES = ("no puzzles: give them as arguments, as text or as files of puzzles (lines, CSV, ARC task JSON, "
              ".npz tokens; - for standard input), or pipe them in")
OUTPUTS = {".npz": "answers, steps, q_halt_logits, verified", ".json": "the rows --json prints"}
SHOWN = 3  # grids shown at most; -o and --json give every answer


def read_export(model_dir: Path) -> ExportMetadata:
    """The metadata of the export a runtime command was given (`refuse_checkpoint` first)."""
    from trm_edge.contract.export_dir import read_metadata

    refuse_checkpoint(model_dir)
    return read_metadata(model_dir)


def refuse_checkpoint(model_dir: Path) -> None:
    """A checkpoint given where an export goes (a .safetensors file or shipped:NAME) is one line
    naming the export command that makes one."""
    given = str(model_dir)
    if given.startswith("shipped:") or (model_dir.suffix == ".safetensors" and not model_dir.is_dir()):
        folder = given.removeprefix("shipped:") if given.startswith("shipped:") else model_dir.stem
        raise TrmEdgeError(f"{given} is a checkpoint, not an export folder: export it first "
                           f"(trm-edge export {given} -o {folder}), then give the folder ({folder})")




def solve_command(
    model_dir: Path = EXPORT_ARGUMENT,
    puzzles: list[str] = typer.Argument(
        None, help="Puzzles as text (a Sudoku is 81 characters, '.' for blanks), or files of puzzles: lines, CSV "
        "(a question or q column), an ARC task JSON, .npz tokens ('inputs' [+ 'puzzle_identifiers']); - is "
        "standard input."
    ),
    output: Path | None = typer.Option(
        None, "-o", "--output", help="Write every answer here: .npz (answers, steps, q_halt_logits, verified: 1/0, "
        "-1 cannot verify; with --budget: verified, version, nudged, version_steps, versions_run) or .json (the "
        "rows --json prints)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the answers as JSON on stdout instead of grids."),
    budget: str | None = typer.Option(
        None, "--budget", metavar="N[:KIND[:SCALE]]", help="Test-time versions (Sudoku, maze): up to N version-steps "
        "a puzzle. A puzzle whose version ends unverified is asked again, each version running at most --max-steps "
        "of what is left; the first verified answer wins, and an easy puzzle pays once. KIND: auto (default: "
        "symmetries while the task has new ones, then nudged ones), symmetries (relabelled/reflected), "
        "trajectories (as given, its latent state nudged by noise) or both (a symmetry, nudged); SCALE: the noise, "
        "relative to the state (default 0.3). Seed 0."
    ),
    backend: str = BACKEND,
    halt: str = HALT,
    max_steps: int | None = MAX_STEPS,
    threads: int | None = THREADS,
    slots: int | None = SLOTS,
) -> None:
    """Solve puzzles with an exported model; renders the first solved grids (givens bold, filled
    cyan) and a summary.

    Each argument is a puzzle, or a file of puzzles when it names one (`-`: standard input; on a
    terminal, type them and end with Ctrl-D). With no argument, standard input is read when it is a
    pipe or a file, as `cat` reads it: `cat puzzles.txt | trm-edge solve DIR`. ARC tasks, voted over
    their versions: `trm-edge solve-arc`."""
    from trm_edge.runtime.puzzle_files import STDIN, is_file_argument, read_arguments
    from trm_edge.runtime.solver import Solver, slots_for

    if output is not None:  # before reading or solving anything, not after
        if output.suffix not in OUTPUTS:
            kinds = "; ".join(f"{suffix}: {what}" for suffix, what in OUTPUTS.items())
            raise TrmEdgeError(f"-o {output}: give a file name ending in .npz or .json ({kinds})")
        check_output_file(output, None, *(a for a in puzzles or [] if a != STDIN and is_file_argument(a)))
    spend = None if budget is None else parse_budget(budget)
    meta = read_export(model_dir)
    work = read_arguments(puzzles or [], meta, waiting=_say_waiting)
    if not work:
        raise TrmEdgeError(NO_PUZZLES)
    # The puzzles first, where they are all known: a solver opened for no more slots than puzzles
    # (auto's candidates timed at the width the work runs at: one puzzle, one slot). With versions
    # each puzzle may have several in flight: the solver keeps its slots.
    width = slots_for(meta, slots, "--slots")  # a fixed-batch export runs its batch, fewer puzzles padded
    width = min(width, len(work)) if spend is None else width
    solver = Solver.load(model_dir, solver_options(backend, halt, max_steps, threads, width), meta=meta)
    results: list[Answer]
    if spend is None:
        results = list(solver.solve(work))
    else:
        from trm_edge.runtime.trajectories import Noise
        from trm_edge.runtime.versions import VersionedRun

        steps, kind, scale = spend
        run = VersionedRun(solver, budget=steps, kind=kind, noise=None if scale is None else Noise(scale))
        results = list(run.solve([solver.encode(p, i) for i, p in enumerate(work)]))
    if output is not None:
        _write(output, results)
    if as_json:
        print(json.dumps([_row(r) for r in results], indent=2))
    else:
        _show(solver, results, spend)
    if output is not None:  # beside the JSON on stdout, not in it
        (err_console if as_json else console).print(f"wrote {output} ({len(results)} puzzles)", highlight=False)


def _say_waiting() -> None:
    end = "Ctrl-Z, Enter" if os.name == "nt" else "Ctrl-D"
    err_console.print(f"reading puzzles from standard input (end with {end})", highlight=False)


def parse_budget(text: str) -> tuple[int, str, float | None]:
    """--budget N[:KIND[:SCALE]] -> (version-steps, kind, noise scale or None for the default)."""
    from trm_edge.runtime.versions import DEFAULT_KIND, KINDS

    parts = [part.strip() for part in text.split(":")]
    usage = (f"--budget takes N[:KIND[:SCALE]]: version-steps a puzzle, then one of {', '.join(KINDS)} and a "
             f"positive noise scale (--budget 1024, --budget 512:symmetries, --budget 1024:both:0.5), not {text!r}")
    steps = whole_number(parts[0])
    if len(parts) > 3 or steps is None or steps < 1:
        raise TrmEdgeError(usage)
    kind = parts[1] if len(parts) > 1 else DEFAULT_KIND
    if kind not in KINDS:
        raise TrmEdgeError(usage)
    scale = None
    if len(parts) == 3:
        scale = positive_scale(parts[2])
        if kind == "symmetries" or scale is None:
            raise TrmEdgeError(usage if kind != "symmetries" else
                               f"--budget {text}: symmetries are not nudged, so they take no noise scale")
    return steps, kind, scale


def _show(solver: Solver, results: list[Answer], spend: tuple[int, str, float | None] | None) -> None:
    """The first grids, each under its line, and the summary."""
    from trm_edge.runtime.versions import VersionedResult

    codec = solver.codec
    for r in results[:SHOWN]:
        if isinstance(r, VersionedResult):
            by = "as given" if r.version == 0 else f"by version {r.version}{' (nudged)' if r.nudged else ''}"
            line = f"{r.rule} {by} after {r.versions_run} version(s), {r.version_steps} version-steps"
        else:
            line = f"{r.steps} steps, halting confidence {r.halt_confidence:.2f}, {r.latency_s * 1e3:.1f} ms"
        console.print(f"puzzle {r.index}: {line}{_verdict(r.verified)}")
        console.print(codec.render(r.puzzle, r.answer) if codec else str(r.answer.tolist()))
        console.print()
    steps = [getattr(r, "version_steps", r.steps) for r in results]
    summary = f"{len(results)} puzzles, mean {np.mean(steps):.2f} {'steps' if spend is None else 'version-steps'}"
    if solver.verifier is not None:
        verified = sum(bool(r.verified) for r in results)
        summary += f", {verified} verified solutions ({100 * verified / len(results):.1f}%)"
    how = "" if spend is None else f"budget {spend[0]} version-steps of {spend[1]}, "
    console.print(summary + f" [dim]({how}backend {solver.engine}, halting {solver.policy.name})[/]")


def _verdict(verified: bool | None) -> str:
    if verified is None:
        return ""
    return "  [green]verified solution[/]" if verified else "  [red]not verified: not a solution[/]"


def _row(r: Answer) -> dict[str, Any]:
    """One answer as --json prints it (and -o .json writes it)."""
    from trm_edge.runtime.versions import VersionedResult

    row: dict[str, Any] = {"index": r.index, "answer": r.text if r.text is not None else r.answer.tolist(),
                           "steps": r.steps, "verified": r.verified}
    if isinstance(r, VersionedResult):
        return row | {"rule": r.rule, "version": r.version, "nudged": r.nudged, "version_steps": r.version_steps,
                      "versions_run": r.versions_run}
    return row | {"halt_confidence": _finite(r.halt_confidence), "latency_ms": round(r.latency_s * 1e3, 3)}


def _finite(value: float) -> float | None:
    """JSON has no NaN: a non-finite confidence (a broken export) is written as null."""
    return round(value, 4) if np.isfinite(value) else None


def _write(path: Path, results: list[Answer]) -> None:
    """Every answer to `path` (atomically): .npz columns or the --json rows."""
    from trm_edge.runtime.versions import VersionedResult

    if path.suffix == ".json":
        atomic_write(path, json.dumps([_row(r) for r in results], indent=2))
        return
    # Any-valued: numpy's stubs would match a dict of arrays against savez's allow_pickle flag.
    arrays: dict[str, Any] = {"answers": np.stack([r.answer for r in results]),
                              "steps": np.array([r.steps for r in results])}
    if all(isinstance(r, VersionedResult) for r in results):
        arrays |= {name: np.array([getattr(r, name) for r in results], dtype=np.int32)
                   for name in ("version", "nudged", "version_steps", "versions_run")}
        arrays["verified"] = np.array([int(r.verified) for r in results], dtype=np.int8)
    else:
        arrays["q_halt_logits"] = np.array([getattr(r, "halt_logit", np.nan) for r in results], dtype=np.float32)
        arrays["verified"] = np.array([getattr(r, "verified_code", -1) for r in results], dtype=np.int8)
    with atomic_file(path) as handle:
        np.savez(handle, **arrays)


def calibrate_command(
    model_dir: Path = EXPORT_ARGUMENT,
    data: Path = typer.Option(
        ..., "--data", help="Held-out puzzles (.npz: inputs [+labels] or puzzles [+solutions]); labels optional."
    ),
    max_loss: float = typer.Option(
        0.005, "--max-loss", help="Accuracy the default may give up against fixed max steps (0.005 = half a point)."
    ),
    output: Path | None = typer.Option(
        None, "-o", "--output", help="Write the accuracy-vs-steps curve here (.png)."
    ),
    backend: str = BACKEND,
    threads: int | None = THREADS,
    slots: int | None = SLOTS,
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

    from trm_edge.contract.held_out import load_puzzles
    from trm_edge.runtime.calibrate import calibrate, describe_choice, store
    from trm_edge.runtime.solver import Solver, slots_for

    if not 0 <= max_loss < 1:  # NaN fails this too
        raise TrmEdgeError(f"--max-loss is a share of puzzles in [0, 1) (0.005 = half a point), got {max_loss}")
    refuse_checkpoint(model_dir)
    check_output_folder(model_dir)  # the choice goes into its trm_edge.json: refused now, not after recording
    if output is not None:
        check_output_file(output, ".png", data)
    meta = read_export(model_dir)
    options = solver_options(backend, "model", threads=threads, slots=slots_for(meta, slots, "--slots"))
    solver = Solver.load(model_dir, options, meta=meta)
    held_out = load_puzzles(data, solver.seq_len, solver.vocab_size)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("recording every step", total=len(held_out))
        result = calibrate(solver, held_out, max_loss, progress=lambda n: progress.advance(task, n))
    store(model_dir, result, data.name, solver.meta)
    console.print(calibration_table(result, data.name))
    console.print(describe_choice(result))
    if output is not None:
        from trm_edge.runtime.plots import plot_calibration

        plot_calibration(output, result, f"{model_dir}: halting on {data.name}")
        console.print(f"wrote {output}")


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
