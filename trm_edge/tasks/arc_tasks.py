"""ARC task files as people have them, read and checked.

- Kaggle challenges: `{task_id: {"train": [{"input": g, "output": g}, ...], "test": [{"input": g}, ...]}}`
  with solutions in a separate `{task_id: [output grid per test input]}`;
- one task: `{"train": [...], "test": [{"input": g[, "output": g]}, ...]}` (the upstream ARC-AGI
  repositories), named by its file name;
- a folder of one-task files.
Grids are lists of equal rows of integers 0-9, at most 30x30.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trm_edge.errors import TrmEdgeError
from trm_edge.tasks.base import PuzzleError

Grid = list[list[int]]
MAX_SIDE = 30


@dataclass
class ArcTask:
    name: str
    train: list[tuple[Grid, Grid]]  # demonstration pairs
    test: list[tuple[Grid, Grid | None]]  # test pairs; the output is None when no solution is known


def check_grid(grid: Any, where: str) -> Grid:
    """`grid` if it is an ARC grid, else a PuzzleError saying where and what is wrong."""
    if not isinstance(grid, list) or not grid or not all(isinstance(row, list) for row in grid):
        raise PuzzleError(f"{where}: an ARC grid is a non-empty list of rows")
    width = len(grid[0])
    if width == 0 or any(len(row) != width for row in grid):
        raise PuzzleError(f"{where}: every row of an ARC grid must have the same, non-zero length")
    if len(grid) > MAX_SIDE or width > MAX_SIDE:
        raise PuzzleError(f"{where}: ARC grids are at most {MAX_SIDE}x{MAX_SIDE}, this one is {len(grid)}x{width}")
    if not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 9 for row in grid for v in row):
        raise PuzzleError(f"{where}: ARC colours are integers 0-9")
    return grid


def parse_task(name: str, doc: Any, solutions: list[Any] | None = None) -> ArcTask:
    """One task from its JSON object; test outputs from the task itself or from `solutions`."""
    if not isinstance(doc, dict) or not isinstance(doc.get("test"), list) or not doc["test"]:
        raise PuzzleError(f"task {name}: an ARC task has a non-empty 'test' list of {{\"input\": grid}} entries")
    train_pairs = doc.get("train", [])
    if not isinstance(train_pairs, list):
        raise PuzzleError(f'task {name}: \'train\' must be a list of {{"input", "output"}} pairs')
    train = []
    for i, pair in enumerate(train_pairs):
        if not isinstance(pair, dict) or "input" not in pair or "output" not in pair:
            raise PuzzleError(f"task {name}, train pair {i}: needs 'input' and 'output'")
        train.append(
            (
                check_grid(pair["input"], f"task {name}, train pair {i} input"),
                check_grid(pair["output"], f"task {name}, train pair {i} output"),
            )
        )
    if solutions is not None and (not isinstance(solutions, list) or len(solutions) != len(doc["test"])):
        raise PuzzleError(f"task {name}: the solutions must list one grid per test input ({len(doc['test'])})")
    test = []
    for i, pair in enumerate(doc["test"]):
        if not isinstance(pair, dict) or "input" not in pair:
            raise PuzzleError(f"task {name}, test input {i}: needs 'input'")
        output = solutions[i] if solutions is not None else pair.get("output")
        test.append(
            (
                check_grid(pair["input"], f"task {name}, test input {i}"),
                None if output is None else check_grid(output, f"task {name}, test output {i}"),
            )
        )
    return ArcTask(name, train, test)


def read_json(path: str | Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise TrmEdgeError(f"no ARC file at {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise TrmEdgeError(f"{path} is not ARC JSON: {str(exc)[:200]}") from None
    except OSError as exc:
        raise TrmEdgeError(f"cannot read {path}: {exc.strerror or exc}") from None


def is_single_task(doc: Any) -> bool:
    return isinstance(doc, dict) and "test" in doc and isinstance(doc["test"], list)


def read_arc_tasks(path: str | Path, solutions: str | Path | None = None) -> list[ArcTask]:
    """The tasks of a challenges file, a one-task file or a folder of them, in file order, with test
    outputs from `solutions` (a Kaggle solutions file) or from the task files themselves."""
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.json"))
        if not files:
            raise TrmEdgeError(f"no ARC task files (*.json) in {path}")
        docs = {f.stem: read_json(f) for f in files}
    else:
        doc = read_json(path)
        docs = {path.stem: doc} if is_single_task(doc) else doc
    if not isinstance(docs, dict) or not docs:
        raise TrmEdgeError(f'{path}: expected ARC tasks ({{task_id: task}}) or one task ({{"train", "test"}})')
    answers = read_solutions(solutions) if solutions is not None else {}
    missing = [name for name in docs if solutions is not None and name not in answers]
    if missing:
        raise TrmEdgeError(f"{solutions} has no solutions for {len(missing)} tasks (first: {', '.join(missing[:5])})")
    return [parse_task(str(name), doc, answers.get(name)) for name, doc in docs.items()]


def read_solutions(path: str | Path) -> dict[str, list[Any]]:
    doc = read_json(path)
    if not isinstance(doc, dict) or not all(isinstance(v, list) for v in doc.values()):
        raise TrmEdgeError(f"{path}: ARC solutions are {{task_id: [output grid per test input]}}")
    return doc
