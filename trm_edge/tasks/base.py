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

    def encode(self, text: str) -> np.ndarray:
        """Puzzle text -> (seq_len,) int32 tokens in the official encoding; PuzzleError if malformed."""
        ...

    def decode(self, tokens: np.ndarray) -> str:
        """(seq_len,) answer tokens -> the answer as text in the same format users type."""
        ...

    def render(self, puzzle: np.ndarray, answer: np.ndarray) -> str:
        """A grid for the terminal (rich markup) telling givens from filled-in cells."""
        ...
