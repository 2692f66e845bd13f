"""The official augmentations, each with its inverse (evaluation maps predictions back with it).

- Sudoku: relabel the digits, shuffle the three bands and the rows inside each band, the same for
  stacks and columns, and transpose half the time. Every such map keeps a valid grid valid.
- Grids (Maze, ARC): the 8 symmetries of the square, and for ARC a permutation of the colours 1-9
  (`trm_edge.tasks.arc_versions`, shared with the runtime, which maps answers back with them).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# --- Sudoku -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SudokuTransform:
    digits: np.ndarray  # (10,) new digit of each digit; digits[0] == 0 keeps blanks blank
    rows: np.ndarray  # (9,) source row of each output row
    cols: np.ndarray  # (9,) source column of each output column
    transpose: bool

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
