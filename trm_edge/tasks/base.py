"""What every task codec offers: everything task-specific lives in its codec.

A task is one module with one codec class (subclass `BaseCodec` for the defaults) and one line in
`trm_edge/tasks/registry.py` (or `register(MyCodec)` from your own code): parse and format its
puzzles, render them, verify answers by the rules, split a text file into puzzles, its symmetry
group (test-time versions), puzzles for an export to validate on, a legend and a picture.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

from trm_edge.errors import TrmEdgeError


class PuzzleError(TrmEdgeError):
    """A malformed puzzle: the message names what is wrong and where."""


class Codec(Protocol):
    name: str
    seq_len: int
    vocab_size: int
    # Whether an answer can be checked without a label (`verify`): a Sudoku or a maze can, ARC cannot.
    can_verify: bool
    legend: str  # how to read `render`'s output (the demo prints it under the grids)

    def encode(self, text: str) -> np.ndarray:
        """Puzzle text -> (seq_len,) int32 tokens in the official encoding; PuzzleError if malformed."""
        ...

    def decode(self, tokens: np.ndarray) -> str:
        """(seq_len,) answer tokens -> the answer as text in the same format users type."""
        ...

    def render(self, puzzle: np.ndarray, answer: np.ndarray) -> str:
        """A grid for the terminal (rich markup) telling givens from filled-in cells."""
        ...

    def verify(self, puzzles: np.ndarray, answers: np.ndarray) -> np.ndarray:
        """(N, seq_len) puzzle and answer tokens -> (N,) bool: each answer is a solution of its
        puzzle, decided by the puzzle's rules alone (no label). Only when `can_verify`."""
        ...

    def is_solution(self, puzzle_tokens: np.ndarray, answer_tokens: np.ndarray) -> bool:
        """`verify` for one puzzle."""
        ...

    def split_text(self, text: str) -> list[str]:
        """A text file's puzzles, each as `encode` takes it (CSV files are read before this)."""
        ...

    def symmetries(self, count: int, seed: int = 0) -> list[Any]:
        """`count` versions of a puzzle (maps with `forward` and `inverse` on token arrays, the
        identity first, the rest drawn from `seed`) that keep a puzzle a puzzle and a solution a
        solution; a TrmEdgeError where the task has no such group."""
        ...

    def picture(self, path: Path, answers: list[np.ndarray], titles: list[str]) -> Path | None:
        """Solved puzzles drawn to `path` (PNG), where a picture reads better than text; else None."""
        ...

    def exactly_once_units(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Where `verify` is "each unit of cells holds each symbol exactly once, givens kept": the
        (units, seq_len) bool cell membership and the symbol tokens, so that a graph can verify too
        (solve.onnx); None where the rule is another (a maze's shortest path)."""
        ...

    def sample_puzzles(self, count: int, seed: int = 0) -> np.ndarray | None:
        """(count, seq_len) int32 puzzles of this task drawn from `seed` (the same seed, the same
        puzzles), made in a fraction of a second with numpy alone: real puzzles for an export to
        validate on when it is given none. None where the task has no such rule (ARC)."""
        ...


class BaseCodec:
    """Defaults for a codec: one puzzle per non-empty line ('#' starts a comment line), no symmetry
    group, no puzzles of its own, no picture. `official_shape` is (seq_len, vocab) of an official
    data set of the task, which `trm-edge convert` recognises (None: none)."""

    name = "base"
    can_verify = False
    legend = ""
    official_shape: tuple[int, int] | None = None
    square = False  # a size x size canvas taking a `size` option (convert sets it from seq_len)

    seq_len = 0
    vocab_size = 0

    def encode(self, text: str) -> np.ndarray:
        raise NotImplementedError(f"task {self.name!r}: a codec reads puzzle text (encode)")

    def decode(self, tokens: np.ndarray) -> str:
        raise NotImplementedError(f"task {self.name!r}: a codec writes answers as text (decode)")

    def verify(self, puzzles: np.ndarray, answers: np.ndarray) -> np.ndarray:
        raise CannotVerifyError(f"task {self.name!r} has no rule that checks an answer without its label")

    def render(self, puzzle: np.ndarray, answer: np.ndarray) -> str:
        return self.decode(answer)

    def split_text(self, text: str) -> list[str]:
        return [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]

    def symmetries(self, count: int, seed: int = 0) -> list[Any]:
        raise TrmEdgeError(f"task {self.name!r} has no symmetry group here, so it has no test-time versions")

    def picture(self, path: Path, answers: list[np.ndarray], titles: list[str]) -> Path | None:
        return None

    def exactly_once_units(self) -> tuple[np.ndarray, np.ndarray] | None:
        return None

    def sample_puzzles(self, count: int, seed: int = 0) -> np.ndarray | None:
        return None

    def is_solution(self, puzzle_tokens: np.ndarray, answer_tokens: np.ndarray) -> bool:
        return bool(self.verify(puzzle_tokens, answer_tokens)[0])


class CannotVerifyError(TrmEdgeError):
    """The task has no rule that tells a right answer from a wrong one without its label."""


def check_pair(puzzles: np.ndarray, answers: np.ndarray, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Both as (N, seq_len) integer arrays of one shape, for the batched verifiers."""
    puzzles = np.asarray(puzzles).reshape(-1, seq_len)
    answers = np.asarray(answers).reshape(-1, seq_len)
    if puzzles.shape != answers.shape:
        raise TrmEdgeError(f"{len(puzzles)} puzzles but {len(answers)} answers to verify")
    return puzzles.astype(np.int64), answers.astype(np.int64)
