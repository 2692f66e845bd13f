"""Reading puzzles from files as users have them: a CSV with a `question` (or `q`, `puzzle`,
`quizzes`) column (the Sudoku-Extreme layout `source,q,a,rating`), else text the task's codec
splits (`Codec.split_text`: a Sudoku per line, mazes between empty lines, an ARC task JSON's test
inputs); a task without a codec reads one puzzle per line. `-` is standard input (CSV there when
its first line is such a header). Every puzzle is checked as it is read, so that a bad one is named
by its file and line (`puzzles.txt:17: ...`, `<stdin>:3: ...`).

`read_arguments` reads `solve`'s arguments: each is a puzzle as text, or a file of puzzles when it
names one (or is `-`); an `.npz` file holds tokens ('inputs' [+ 'puzzle_identifiers']).
"""

from __future__ import annotations

import csv
import os
import stat
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from trm_edge.errors import TrmEdgeError
from trm_edge.tasks import BaseCodec, Codec, PuzzleError

if TYPE_CHECKING:
    from trm_edge.contract.metadata import ExportMetadata

STDIN = "-"  # the argument that means standard input
CSV_COLUMNS = ("question", "q", "puzzle", "quizzes")
# An argument with one of these suffixes (or a '/') is a file, there or not: no puzzle's text has them.
FILE_SUFFIXES = (".txt", ".csv", ".json", ".npz")
Puzzle = tuple[str | np.ndarray, int]  # (text or tokens, puzzle identifier), as Solver.solve takes it


def read_arguments(arguments: Sequence[str], meta: ExportMetadata,
                   waiting: Callable[[], None] | None = None) -> list[Puzzle]:
    """The puzzles `solve ARGUMENTS` runs, in order: each argument a puzzle as text (checked later,
    by the solver, as `puzzle N`), or the puzzles of the file it names, checked here against the
    export's task (`FILE:LINE: ...`). No argument: standard input where it is a pipe or a file.
    `waiting` is called before standard input is read from a terminal (to say what it waits for)."""
    from trm_edge.runtime.export_task import task_codec

    codec = task_codec(meta)
    if not arguments and stdin_is_piped():  # `... | trm-edge solve DIR`
        arguments = [STDIN]
    puzzles: list[Puzzle] = []
    for argument in arguments:
        if meta.model.num_puzzle_identifiers > 1 and not argument.lower().endswith(".npz"):
            # Text carries no puzzle identifier: every puzzle would run as id 0 (the blank one), a wrong answer.
            raise TrmEdgeError(
                f"this export tells puzzles apart by identifier ({meta.model.num_puzzle_identifiers:,} of them), which "
                "text puzzles do not carry: solve ARC tasks with trm-edge solve-arc EXPORT TASKS, or give tokens with "
                "their ids as an .npz ('inputs', 'puzzle_identifiers')")
        if not is_file_argument(argument):
            puzzles.append((argument, 0))
        elif Path(argument).suffix.lower() == ".npz":
            puzzles += _tokens(Path(argument), meta)
        else:
            if argument == STDIN and waiting is not None and sys.stdin is not None and sys.stdin.isatty():
                waiting()  # else `-` typed at a terminal waits, saying nothing, for input not known to be wanted
            puzzles += [(text, 0) for text in read_puzzles(argument, codec)]
    return puzzles


def is_file_argument(argument: str) -> bool:
    """Whether a `solve` argument names a file of puzzles (`-`, or a file there) rather than being a
    puzzle; one that looks like a path (a '/' or a puzzle file's suffix) and is not a file is one line."""
    if argument == STDIN:
        return True
    path = Path(argument)
    try:
        if path.is_file():
            return True
        folder = path.is_dir()
    except (OSError, ValueError):  # a name too long to be a path (a long puzzle), or one holding NUL
        return False
    if folder:
        raise TrmEdgeError(f"{argument} is a folder: give a file of puzzles (lines, CSV, ARC task JSON or .npz)")
    if "/" in argument or os.sep in argument or path.suffix.lower() in FILE_SUFFIXES:
        raise TrmEdgeError(f"no such file: {argument} (an argument with a '/' or a {'/'.join(FILE_SUFFIXES)} "
                           "suffix is read as a file of puzzles)")
    return False


def _tokens(path: Path, meta: ExportMetadata) -> list[Puzzle]:
    """An .npz's puzzles as tokens: 'inputs' (or Sudoku 'puzzles') [+ 'puzzle_identifiers']."""
    from trm_edge.contract.held_out import load_puzzles

    data = load_puzzles(path, meta.model.seq_len, meta.model.vocab_size)
    return list(zip(data.inputs, data.puzzle_identifiers.tolist(), strict=True))


def read_puzzles(path: str | Path, codec: Codec | None) -> list[str]:
    """The puzzle texts of `path` (or of standard input for `-`), each checked with `codec`."""
    if str(path) == STDIN:
        name, text = "<stdin>", _decoded(sys.stdin.buffer.read(), "<stdin>")
        is_csv = _csv_header(text)
    else:
        path = Path(path)
        name, text, is_csv = str(path), _read_file(path), path.suffix == ".csv"
    if "\x00" in text:
        raise TrmEdgeError(f"{name} holds NUL bytes: puzzle files are text")
    located = _csv_rows(text, name) if is_csv else _split(text, name, codec)
    if codec is not None:  # checked here, where the line is known (the solver checks them again, by index)
        for number, (line, puzzle) in enumerate(located, 1):
            try:
                codec.encode(puzzle)
            except PuzzleError as exc:
                where = f"{name}:{line}" if line is not None else f"{name}: puzzle {number}"
                raise TrmEdgeError(f"{where}: {exc}") from None
    return [puzzle for _, puzzle in located]


def stdin_is_piped() -> bool:
    """Whether standard input is a pipe or a redirected file: what `solve` reads when it is given no
    puzzle. A terminal, /dev/null or a socket is not (a harness's open socket would wait forever)."""
    try:
        mode = os.fstat(sys.stdin.fileno()).st_mode
    except (AttributeError, OSError, ValueError):  # no stdin, or one without a file (pytest's)
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISREG(mode)


def _read_file(path: Path) -> str:
    if not path.is_file():
        raise TrmEdgeError(f"no puzzle file at {path}")
    try:
        return _decoded(path.read_bytes(), str(path))
    except OSError as exc:
        raise TrmEdgeError(f"cannot read {path}: {exc.strerror or exc}") from None


def _decoded(data: bytes, name: str) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TrmEdgeError(f"{name} is not UTF-8 text (byte {exc.start}): puzzle files are text") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")  # universal newlines, as text-mode reading has


def _csv_header(text: str) -> bool:
    """Whether text read from standard input is a puzzle CSV: its first line names a puzzle column."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    return "," in first and any(field.strip() in CSV_COLUMNS for field in first.split(","))


def _csv_rows(text: str, name: str) -> list[tuple[int | None, str]]:
    """(line, puzzle) of each row of the puzzle column."""
    try:
        reader = csv.DictReader(text.splitlines())
        rows = [(reader.line_num, row) for row in reader]
    except csv.Error as exc:
        raise TrmEdgeError(f"{name} is not a readable CSV: {exc}") from None
    column = next((c for c in CSV_COLUMNS if c in (reader.fieldnames or [])), None)
    if column is None:
        raise TrmEdgeError(f"{name}: a puzzle CSV needs a 'question' (or 'q') column")
    return [(line, row[column] or "") for line, row in rows]


def _split(text: str, name: str, codec: Codec | None) -> list[tuple[int | None, str]]:
    """(line, puzzle) of each puzzle the codec splits `text` into; the line a puzzle starts on is
    found where it stands at the start of a line, in order (None where it is not the text's own,
    as an ARC task's test inputs are not)."""
    try:
        puzzles = (codec or BaseCodec()).split_text(text)
    except PuzzleError as exc:
        raise TrmEdgeError(f"{name}: {exc}") from None
    located: list[tuple[int | None, str]] = []
    cursor, line = 0, 1  # the line `cursor` is on
    for puzzle in puzzles:
        at = text.find(puzzle, cursor) if puzzle else -1
        while at > 0 and text[at - 1] != "\n":
            at = text.find(puzzle, at + 1)
        if at < 0:
            located.append((None, puzzle))
            continue
        line += text.count("\n", cursor, at)
        located.append((line, puzzle))
        line += puzzle.count("\n")
        cursor = at + len(puzzle)
    return located
