"""Reading puzzles from files as users have them.

- Sudoku: one puzzle per line (81 characters, '#' comment lines skipped), or a CSV with a
  `question`/`q` column (the Sudoku-Extreme layout `source,q,a,rating`).
- Maze: puzzles separated by empty lines, or a CSV with a `question` column (a line of spaces is
  a maze row with no walls, not a separator).
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
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise TrmEdgeError(f"{path} is not UTF-8 text (byte {exc.start}): puzzle files are text") from None
    except OSError as exc:
        raise TrmEdgeError(f"cannot read {path}: {exc.strerror or exc}") from None
    if "\x00" in text:
        raise TrmEdgeError(f"{path} holds NUL bytes: puzzle files are text")
    if path.suffix == ".csv":
        try:
            rows = list(csv.DictReader(text.splitlines()))
        except csv.Error as exc:
            raise TrmEdgeError(f"{path} is not a readable CSV: {exc}") from None
        column = next((c for c in ("question", "q", "puzzle", "quizzes") if rows and c in rows[0]), None)
        if column is None:
            raise TrmEdgeError(f"{path}: a puzzle CSV needs a 'question' (or 'q') column")
        return [row[column] or "" for row in rows]
    if task == "arc":
        try:
            doc = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise TrmEdgeError(f"{path} is not an ARC task JSON: {str(exc)[:200]}") from None
        tests = doc.get("test") if isinstance(doc, dict) else None
        if not isinstance(tests, list) or not all(isinstance(t, dict) and "input" in t for t in tests):
            raise TrmEdgeError(f"{path}: an ARC task JSON has a 'test' list of {{\"input\": grid}} entries")
        return [json.dumps(t["input"]) for t in tests]
    if task == "maze":
        blocks, current = [], []
        for line in text.split("\n"):
            if line.rstrip("\r") == "":
                if current:
                    blocks.append("\n".join(current))
                current = []
            else:
                current.append(line)
        if current:
            blocks.append("\n".join(current))
        return blocks
    return [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
