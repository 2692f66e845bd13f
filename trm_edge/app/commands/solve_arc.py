"""`trm-edge solve EXPORT --arc-tasks CHALLENGES.json`: ARC tasks by vote over versions, a submission."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from trm_edge.app.cli_common import console
from trm_edge.atomic import atomic_write
from trm_edge.errors import TrmEdgeError
from trm_edge.runtime.arc import ArcRunner, TaskAnswer, score, submission
from trm_edge.runtime.solver import Solver
from trm_edge.tasks.arc_tasks import read_arc_tasks


def parse_votes(text: str) -> int | None:
    """'all' -> None (every version the export knows); 'N' -> N >= 1."""
    if text.strip().lower() == "all":
        return None
    try:
        votes = int(text)
    except ValueError:
        raise TrmEdgeError(f"--votes takes a count of versions or 'all', got {text!r}") from None
    if votes < 1:
        raise TrmEdgeError(f"--votes must be at least 1 (or all), got {votes}")
    return votes


def solve_arc(
    solver: Solver,
    tasks_path: Path,
    solutions: Path | None,
    votes: str,
    unknown: str,
    submission_path: Path | None,
    as_json: bool,
    show: int,
) -> None:
    tasks = read_arc_tasks(tasks_path, solutions)
    runner = ArcRunner(solver)
    count = parse_votes(votes)
    plan = runner.plan(tasks, count, unknown)
    runs = runner.count_runs(tasks, plan)
    started = time.perf_counter()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console, transient=True, disable=as_json) as progress:
        bar = progress.add_task(f"{len(tasks)} tasks, versions", total=runs)
        answers = runner.solve(tasks, progress=lambda n: progress.advance(bar, n), plan=plan)
    elapsed = time.perf_counter() - started
    if submission_path is not None:
        atomic_write(submission_path, json.dumps(submission(answers)))
    scores = score(answers, tasks)
    if as_json:
        print(json.dumps({"tasks": [_task_json(a) for a in answers], "scores": scores,
                          "versions_per_s": runs / elapsed, "tasks_per_s": len(tasks) / elapsed}, indent=2))
        return
    console.print(_table(answers, tasks_path.name, show))
    unknown_tasks = [a.task for a in answers if a.unknown]
    if unknown_tasks:
        console.print(f"[yellow]{len(unknown_tasks)} tasks had no version in the export: answered as given with "
                      f"puzzle identifier 0 (first: {', '.join(unknown_tasks[:5])})[/]")
    console.print(
        f"{len(tasks)} tasks, {runs} version runs in {elapsed:.1f} s: {runs / elapsed:.2f} versions/s, "
        f"{len(tasks) / elapsed:.3f} tasks/s [dim](backend {solver.backend_name}, halting {solver.policy.name})[/]"
    )
    if scores["tasks"]:
        console.print(f"pass@1 {100 * scores['pass@1']:.1f}%, pass@2 {100 * scores['pass@2']:.1f}% "
                      f"over {int(scores['tasks'])} tasks with known outputs")
    if submission_path is not None:
        console.print(f"wrote {submission_path} (Kaggle submission, {len(answers)} tasks)")


def _table(answers: list[TaskAnswer], title: str, show: int) -> Table:
    table = Table(title=f"ARC tasks from {title} (first {min(show, len(answers))} of {len(answers)})")
    for column in ("task", "test", "versions", "attempt 1 (votes, mean q)", "attempt 2 (votes, mean q)"):
        table.add_column(column)
    for answer in answers[:show]:
        for i, test in enumerate(answer.tests):
            ranked = test.ballot.ranked()
            cells = [f"{c.grid.shape[0]}x{c.grid.shape[1] if c.grid.ndim == 2 else 0} grid ({c.votes}, {c.mean_q:.2f})"
                     for c in ranked[:2]]
            cells += [""] * (2 - len(cells))
            name = answer.task + (" [yellow](unknown)[/]" if answer.unknown else "")
            table.add_row(name if i == 0 else "", str(i), str(test.versions), *cells)
    return table


def _task_json(answer: TaskAnswer) -> dict[str, Any]:
    return {
        "task": answer.task,
        "unknown": answer.unknown,
        "tests": [{"versions": t.versions, "top": [c.to_json() for c in t.ballot.ranked()[:2]]} for t in answer.tests],
    }
