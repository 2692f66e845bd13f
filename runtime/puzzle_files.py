"""Reading puzzles from files as users have them.

- Sudoku: one puzzle per line (81 characters, '#' comment lines skipped), or a CSV with a
  `question`/`q` column (the Sudoku-Extreme layout `source,q,a,rating`).
- Maze: puzzles separated by blank lines, or a CSV with a `question` column.
- ARC: a task JSON (`{"train": [...], "test": [{"input": grid}, ...]}`); its test inputs.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from trm_edge.errors import TrmEdgeError


def read_puzzles(path: str | Path, task: str) -> list[str]:
    path = Path(path)
    if not path.is_file():
        raise TrmEdgeError(f"no puzzle file at {path}")
    text = path.read_text()
    if path.suffix == ".csv":
        rows = list(csv.DictReader(text.splitlines()))
        column = next((c for c in ("question", "q", "puzzle", "quizzes") if rows and c in rows[0]), None)
        if column is None:
            raise TrmEdgeError(f"{path}: a puzzle CSV needs a 'question' (or 'q') column")
        return [row[column] for row in rows]
    if task == "arc":
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TrmEdgeError(f"{path} is not an ARC task JSON: {exc}") from None
        tests = doc.get("test") if isinstance(doc, dict) else None
        if not isinstance(tests, list):
            raise TrmEdgeError(f"{path}: an ARC task JSON has a 'test' list")
        return [json.dumps(t["input"]) for t in tests]
    if task == "maze":
        blocks, current = [], []
        for line in text.split("\n"):
            if line.strip() == "":
                if current:
                    blocks.append("\n".join(current))
                current = []
            else:
                current.append(line)
        if current:
            blocks.append("\n".join(current))
        return blocks
    return [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
