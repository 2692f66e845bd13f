"""Each task's symmetry group: maps of a puzzle that keep it a puzzle of the same kind, with their
inverses, so a model can be asked a puzzle in another version and its answer mapped back.

- Sudoku: relabel the digits, shuffle the three bands and the rows inside each band, the same for
  stacks and columns, transpose. Every such map keeps a valid grid valid and the givens given, so a
  version's verified answer mapped back is a verified answer of the puzzle.
- Maze: the 8 symmetries of the square; walls, S, G and the path move with them, and a shortest
  path stays a shortest path.
- ARC keeps its own versions (`arc_versions`: colour permutations too, and one puzzle identifier
  per version learnt in training).

Training augments with the same maps (`trm_edge.train`). Versions come from a seed: the same
puzzle and seed give the same versions, so the same answer. Each codec's `symmetries` draws them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from trm_edge.errors import TrmEdgeError
from trm_edge.tasks.arc_versions import dihedral, dihedral_inverse


class TokenSymmetry(Protocol):
    def forward(self, tokens: np.ndarray) -> np.ndarray:
        """(..., seq_len) puzzle or answer tokens -> the same in this version's frame."""
        ...

    def inverse(self, tokens: np.ndarray) -> np.ndarray:
        """Tokens in this version's frame -> the puzzle's own frame."""
        ...


@dataclass(frozen=True)
class SudokuTransform:
    """A map of digit grids (0 = blank); `forward`/`inverse` take the codec's tokens (digit + 1)."""

    digits: np.ndarray  # (10,) new digit of each digit; digits[0] == 0 keeps blanks blank
    rows: np.ndarray  # (9,) source row of each output row
    cols: np.ndarray  # (9,) source column of each output column
    transpose: bool

    @staticmethod
    def identity() -> SudokuTransform:
        return SudokuTransform(np.arange(10), np.arange(9), np.arange(9), False)

    @staticmethod
    def random(rng: np.random.Generator) -> SudokuTransform:
        def lines() -> np.ndarray:  # bands (or stacks) shuffled, then the lines inside each
            return np.concatenate([band * 3 + rng.permutation(3) for band in rng.permutation(3)])

        digits = np.concatenate([[0], rng.permutation(9) + 1])
        return SudokuTransform(digits, lines(), lines(), bool(rng.random() < 0.5))

    def apply(self, grids: np.ndarray) -> np.ndarray:
        """Digits (..., 81) with 0 for blank -> transformed digits of the same shape."""
        g = np.asarray(grids).reshape(-1, 9, 9)
        if self.transpose:
            g = g.transpose(0, 2, 1)
        g = g[:, self.rows][:, :, self.cols]
        return self.digits[g].reshape(np.shape(grids))

    def invert(self, grids: np.ndarray) -> np.ndarray:
        inverse_digits = np.argsort(self.digits)
        g = inverse_digits[np.asarray(grids).reshape(-1, 9, 9)]
        out = np.empty_like(g)
        out[:, self.rows[:, None], self.cols[None, :]] = g
        if self.transpose:
            out = out.transpose(0, 2, 1)
        return out.reshape(np.shape(grids))

    def forward(self, tokens: np.ndarray) -> np.ndarray:
        return self.apply(np.asarray(tokens) - 1) + 1

    def inverse(self, tokens: np.ndarray) -> np.ndarray:
        return self.invert(np.asarray(tokens) - 1) + 1


@dataclass(frozen=True)
class SquareSymmetry:
    """Symmetry `tid` (0-7, numbered as `arc_versions.dihedral`) of a size x size token grid."""

    tid: int
    size: int

    def forward(self, tokens: np.ndarray) -> np.ndarray:
        t = np.asarray(tokens)
        return dihedral(t.reshape(*t.shape[:-1], self.size, self.size), self.tid).reshape(t.shape)

    def inverse(self, tokens: np.ndarray) -> np.ndarray:
        t = np.asarray(tokens)
        return dihedral_inverse(t.reshape(*t.shape[:-1], self.size, self.size), self.tid).reshape(t.shape)


def check_count(count: int) -> int:
    """`count` versions, at least one (the identity)."""
    if count < 1:
        raise TrmEdgeError(f"versions must be at least 1, got {count}")
    return count
