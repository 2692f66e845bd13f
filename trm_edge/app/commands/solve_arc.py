"""`trm-edge solve-arc EXPORT TASKS`: ARC tasks answered by vote over versions, a Kaggle submission."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from trm_edge.app.cli_common import (
    BACKEND,
    EXPORT_ARGUMENT,
    HALT,
    THREADS,
    console,
    positive_scale,
    solver_options,
    whole_number,
)
from trm_edge.app.commands.solve import SHOWN, read_export
from trm_edge.errors import TrmEdgeError
from trm_edge.output_paths import check_output_file

if TYPE_CHECKING:
    from trm_edge.runtime.arc import ArcTrajectories, TaskAnswer
    from trm_edge.runtime.solver import Solver
    from trm_edge.tasks.arc_tasks import ArcTask

def solve_arc_command(
    model_dir: Path = EXPORT_ARGUMENT,
    tasks_path: Path = typer.Argument(
        ..., metavar="TASKS", help="ARC tasks: a Kaggle challenges JSON, one task JSON or a folder of them."
    ),
    solutions: Path | None = typer.Option(
        None, "--solutions", help="Kaggle solutions JSON: scores the answers (pass@1, pass@2)."
    ),
    votes: str = typer.Option(
        "all", "--votes", metavar="V[:T[:RULE[:SCALE]]]", help="V: versions asked per test input, N (identity "
        "first) or all. T: trajectories per version (default 0): the version asked T more times, its latent state "
        "nudged by seeded noise (seed 0), each answer one more vote. RULE chooses the answers: vote (default: most "
        "votes, then mean halting probability), confidence (the answer whose surest voter's halting probability is "
        "highest) or both (votes weighted by halting probability). SCALE: the noise, relative to the state "
        "(default 0.3)."
    ),
    unknown_tasks: str = typer.Option(
        "error", "--unknown-tasks", help="A task the export has no version of: error | identity (asked as given)."
    ),
    output: Path | None = typer.Option(
        None, "-o", "--output", help="Write the Kaggle submission here (.json: two attempts per test input)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print every task's answers and the scores as JSON."),
    backend: str = BACKEND,
    halt: str = HALT,
    threads: int | None = THREADS,
) -> None:
    """Answer ARC tasks as the official evaluation does: every test input is asked in each version
    of its task the export knows (identity first, `--votes N` of them), the answers mapped back and
    voted on; the two best grids per input are the attempts (`-o submission.json` writes them).
    `--votes all:4:both` also asks each version 4 more times, nudged, and weighs every vote by its
    halting probability (docs/arc.md).

    The solver opens at its default slots (64; an export --batch N: N) and the model's step bound:
    `--halt fixed:N` runs exactly N steps."""
    from trm_edge.runtime.solver import Solver
    from trm_edge.tasks.arc_tasks import read_arc_tasks

    if output is not None:
        check_output_file(output, ".json", tasks_path, solutions)  # before solving anything, not after
    count, trajectories, rule = parse_votes(votes)
    meta = read_export(model_dir)
    tasks = read_arc_tasks(tasks_path, solutions)  # a bad task file fails before any backend opens
    solver = Solver.load(model_dir, solver_options(backend, halt, threads=threads), meta=meta)
    run_tasks(solver, tasks, tasks_path.name, count, unknown_tasks, output, as_json, trajectories, rule)


def parse_votes(text: str) -> tuple[int | None, ArcTrajectories, str]:
    """--votes V[:T[:RULE[:SCALE]]] -> (versions or None for all, trajectories, choosing rule)."""
    from trm_edge.runtime.arc import ArcTrajectories
    from trm_edge.runtime.trajectories import Noise
    from trm_edge.tasks.arc_vote import DEFAULT_RULE, RULES

    parts = [p.strip() for p in text.split(":")]
    usage = (f"--votes takes V[:T[:RULE[:SCALE]]]: versions per test input (N or all), trajectories per version "
             f"(0 or more), one of {', '.join(RULES)} and a positive noise scale (--votes 8, --votes all:4, "
             f"--votes 8:2:both, --votes all:4:confidence:0.5), not {text!r}")
    versions = whole_number(parts[0])
    if len(parts) > 4 or not (parts[0].lower() == "all" or (versions is not None and versions >= 1)):
        raise TrmEdgeError(usage)
    count = whole_number(parts[1]) if len(parts) > 1 else 0
    if count is None:
        raise TrmEdgeError(usage)
    rule = parts[2] if len(parts) > 2 else DEFAULT_RULE
    if rule not in RULES:
        raise TrmEdgeError(usage)
    noise = Noise()
    if len(parts) == 4:
        scale = positive_scale(parts[3])
        if scale is None:
            raise TrmEdgeError(usage)
        if count == 0:
            raise TrmEdgeError(f"--votes {text}: with no trajectories nothing is nudged, so it takes no noise scale")
        noise = Noise(scale)
    return versions, ArcTrajectories(count, noise), rule


def run_tasks(solver: Solver, tasks: list[ArcTask], title: str, votes: int | None, unknown: str,
              submission_path: Path | None, as_json: bool, trajectories: ArcTrajectories, rule: str) -> None:
    """Every task through `solver`, voted by `rule`; the submission written, the answers printed."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from trm_edge.atomic import atomic_write
    from trm_edge.runtime.arc import ArcRunner, score, submission

    runner = ArcRunner(solver)
    plan = runner.plan(tasks, votes, unknown)
    runs = runner.count_runs(tasks, plan, trajectories)
    started = time.perf_counter()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console, transient=True, disable=as_json) as progress:
        bar = progress.add_task(f"{len(tasks)} tasks, version runs", total=runs)
        answers = runner.solve(tasks, progress=lambda n: progress.advance(bar, n), plan=plan,
                               trajectories=trajectories, rule=rule)
    elapsed = time.perf_counter() - started
    if submission_path is not None:
        atomic_write(submission_path, json.dumps(submission(answers)))
    scores = score(answers, tasks)
    if as_json:
        print(json.dumps({"tasks": [_task_json(a) for a in answers], "scores": scores, "rule": rule,
                          "trajectories_per_version": trajectories.count,
                          "noise_scale": trajectories.noise.scale if trajectories.count else None,
                          "versions_per_s": runs / elapsed, "tasks_per_s": len(tasks) / elapsed}, indent=2))
        return
    console.print(_table(answers, title))
    unknown_tasks = [a.task for a in answers if a.unknown]
    if unknown_tasks:
        console.print(f"[yellow]{len(unknown_tasks)} tasks had no version in the export: answered as given with "
                      f"puzzle identifier 0 (first: {', '.join(unknown_tasks[:5])})[/]")
    how = f", {trajectories.count} trajectories a version" if trajectories.count else ""
    console.print(
        f"{len(tasks)} tasks, {runs} version runs{how} (chosen by {rule}) in {elapsed:.1f} s: "
        f"{runs / elapsed:.2f} versions/s, "
        f"{len(tasks) / elapsed:.3f} tasks/s [dim](backend {solver.backend_name}, halting {solver.policy.name})[/]"
    )
    if scores["tasks"]:
        console.print(f"pass@1 {100 * scores['pass@1']:.1f}%, pass@2 {100 * scores['pass@2']:.1f}% "
                      f"over {int(scores['tasks'])} tasks with known outputs")
    if submission_path is not None:
        console.print(f"wrote {submission_path} (Kaggle submission, {len(answers)} tasks)")


def _table(answers: list[TaskAnswer], title: str) -> Table:
    table = Table(title=f"ARC tasks from {title} (first {min(SHOWN, len(answers))} of {len(answers)})")
    for column in ("task", "test", "versions (+trajectories each)", "attempt 1 (votes, mean q)",
                   "attempt 2 (votes, mean q)"):
        table.add_column(column)
    for answer in answers[:SHOWN]:
        for i, test in enumerate(answer.tests):
            ranked = test.ballot.ranked()
            cells = [f"{c.grid.shape[0]}x{c.grid.shape[1] if c.grid.ndim == 2 else 0} grid ({c.votes}, {c.mean_q:.2f})"
                     for c in ranked[:2]]
            cells += [""] * (2 - len(cells))
            name = answer.task + (" [yellow](unknown)[/]" if answer.unknown else "")
            asked = f"{test.versions} (+{test.trajectories})" if test.trajectories else str(test.versions)
            table.add_row(name if i == 0 else "", str(i), asked, *cells)
    return table


def _task_json(answer: TaskAnswer) -> dict[str, Any]:
    return {
        "task": answer.task,
        "unknown": answer.unknown,
        "tests": [{"versions": t.versions, "trajectories": t.trajectories,
                   "top": [c.to_json() for c in t.ballot.ranked()[:2]]} for t in answer.tests],
    }
