"""Readers for the official data files, from local copies (see ../shared/data/README.md).

- Sudoku-Extreme CSV: `source,q,a,rating`, 81-character strings, '.' (or '0') for blanks.
- Maze-Hard CSV: `source,question,answer,rating`, row-major strings over '# SGo'.
- ARC: Kaggle-style combined `<subset>_challenges.json` + `<subset>_solutions.json`
  (`trm_edge.tasks.arc_tasks` reads every ARC layout).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from trm_edge.errors import TrmEdgeError
from trm_edge.tasks.arc_tasks import ArcTask, read_arc_tasks
from trm_edge.tasks.maze import CHARSET as MAZE_CHARSET

Grid = list[list[int]]


def _rows(path: str | Path) -> list[list[str]]:
    path = Path(path)
    if not path.is_file():
        raise TrmEdgeError(f"{path}: no such file")
    with path.open(newline="") as f:
        rows = [r for r in csv.reader(f) if r]
    if not rows:
        raise TrmEdgeError(f"{path} is empty")
    if rows[0][0] == "source":
        rows = rows[1:]
    return rows


def read_sudoku_csv(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(puzzles, solutions, rating): (N, 81) int8 digits with 0 blank, and (N,) int ratings."""
    rows = _rows(path)
    puzzles = np.zeros((len(rows), 81), np.int8)
    solutions = np.zeros((len(rows), 81), np.int8)
    ratings = np.zeros(len(rows), np.int64)
    for n, row in enumerate(rows):
        if len(row) < 3 or len(row[1]) != 81 or len(row[2]) != 81:
            raise TrmEdgeError(f"{path} line {n + 2}: expected source,<81 cells>,<81 digits>[,rating]")
        q = np.frombuffer(row[1].replace(".", "0").encode(), np.uint8) - ord("0")
        a = np.frombuffer(row[2].encode(), np.uint8) - ord("0")
        if q.max() > 9 or a.max() > 9 or a.min() < 1:
            raise TrmEdgeError(f"{path} line {n + 2}: puzzle must be digits and '.', answer digits 1-9")
        if ((q != 0) & (q != a)).any():
            raise TrmEdgeError(f"{path} line {n + 2}: the answer changes a given")
        puzzles[n], solutions[n] = q, a
        ratings[n] = int(row[3]) if len(row) > 3 and row[3].lstrip("-").isdigit() else -1
    return puzzles, solutions, ratings


def read_maze_csv(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, labels) token ids (N, side*side) in the Maze codec's vocabulary."""
    rows = _rows(path)
    cells = len(rows[0][1])
    side = round(cells**0.5)
    if side * side != cells:
        raise TrmEdgeError(f"{path}: a maze is a square grid, but the first one has {cells} cells")
    lookup = np.zeros(256, np.uint8)  # character -> token; 0 marks a character outside the charset
    for token, ch in enumerate(MAZE_CHARSET, start=1):
        lookup[ord(ch)] = token
    inputs = np.zeros((len(rows), cells), np.uint8)
    labels = np.zeros_like(inputs)
    for n, row in enumerate(rows):
        if len(row) < 3 or len(row[1]) != cells or len(row[2]) != cells:
            raise TrmEdgeError(f"{path} line {n + 2}: expected source,<{cells} cells>,<{cells} cells>[,rating]")
        q = lookup[np.frombuffer(row[1].encode("latin-1"), np.uint8)]
        a = lookup[np.frombuffer(row[2].encode("latin-1"), np.uint8)]
        if (q == 0).any() or (a == 0).any():
            raise TrmEdgeError(f"{path} line {n + 2}: mazes use only the characters {MAZE_CHARSET!r}")
        inputs[n], labels[n] = q, a
    return inputs, labels


def read_arc_combined(folder: str | Path, subset: str) -> list[ArcTask]:
    """Tasks of `<subset>_challenges.json` (sorted by name) with answers from
    `<subset>_solutions.json` if present."""
    folder = Path(folder)
    challenges = folder / f"arc-agi_{subset}_challenges.json"
    if not challenges.is_file():
        found = sorted(
            p.name.removeprefix("arc-agi_").removesuffix("_challenges.json")
            for p in folder.glob("arc-agi_*_challenges.json")
        )
        raise TrmEdgeError(f"no ARC subset {subset!r} in {folder} (found: {', '.join(found) or 'none'})")
    solutions = folder / f"arc-agi_{subset}_solutions.json"
    tasks = read_arc_tasks(challenges, solutions if solutions.is_file() else None)
    return sorted(tasks, key=lambda t: t.name)
