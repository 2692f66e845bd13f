"""What every task codec offers."""

from __future__ import annotations

from typing import Protocol

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

    def sample_puzzles(self, count: int, seed: int = 0) -> np.ndarray | None:
        """(count, seq_len) int32 puzzles of this task drawn from `seed` (the same seed, the same
        puzzles), made in a fraction of a second with numpy alone: real puzzles for an export to
        validate on when it is given none. None where the task has no such rule (ARC)."""
        ...


class CannotVerifyError(TrmEdgeError):
    """The task has no rule that tells a right answer from a wrong one without its label."""


def check_pair(puzzles: np.ndarray, answers: np.ndarray, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Both as (N, seq_len) integer arrays of one shape, for the batched verifiers."""
    puzzles = np.asarray(puzzles).reshape(-1, seq_len)
    answers = np.asarray(answers).reshape(-1, seq_len)
    if puzzles.shape != answers.shape:
        raise TrmEdgeError(f"{len(puzzles)} puzzles but {len(answers)} answers to verify")
    return puzzles.astype(np.int64), answers.astype(np.int64)
