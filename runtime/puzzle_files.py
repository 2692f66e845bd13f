"""Reading puzzles from files as users have them: a CSV with a `question` (or `q`, `puzzle`,
`quizzes`) column (the Sudoku-Extreme layout `source,q,a,rating`), else text the task's codec
splits (`Codec.split_text`: a Sudoku per line, mazes between empty lines, an ARC task JSON's test
inputs); a task without a codec reads one puzzle per line.
"""

from __future__ import annotations

import csv
from pathlib import Path

from trm_edge.errors import TrmEdgeError
from trm_edge.tasks import BaseCodec, Codec, PuzzleError


def read_puzzles(path: str | Path, codec: Codec | None) -> list[str]:
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
    try:
        return (codec or BaseCodec()).split_text(text)
    except PuzzleError as exc:
        raise TrmEdgeError(f"{path}: {exc}") from None
