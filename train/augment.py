"""The official augmentations, each with its inverse (evaluation maps predictions back with it).

- Sudoku: relabel the digits, shuffle the three bands and the rows inside each band, the same for
  stacks and columns, and transpose half the time. Every such map keeps a valid grid valid.
- Grids (Maze, ARC): the 8 symmetries of the square (dihedral group).
- ARC: permute the colours 1-9 (0, the background, stays).
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


# --- the square's symmetries ------------------------------------------------------------------

DIHEDRAL_NAMES = ("identity", "rot90", "rot180", "rot270", "flip", "flip+rot90", "flip+rot180", "flip+rot270")
DIHEDRAL_INVERSE = (0, 3, 2, 1, 4, 5, 6, 7)  # the flips composed with rotations are their own inverses


def dihedral(grid: np.ndarray, k: int) -> np.ndarray:
    """Transform k (0-7) of a (..., H, W) grid: a flip (k >= 4) followed by k % 4 quarter turns."""
    g = np.asarray(grid)
    if k >= 4:
        g = np.flip(g, axis=-1)
    return np.ascontiguousarray(np.rot90(g, k % 4, axes=(-2, -1)))


def dihedral_inverse(grid: np.ndarray, k: int) -> np.ndarray:
    return dihedral(grid, DIHEDRAL_INVERSE[k])


# --- ARC colours ------------------------------------------------------------------------------


def random_colour_permutation(rng: np.random.Generator) -> np.ndarray:
    """(10,) new colour of each colour; 0 (background) maps to itself, as the official builder does."""
    return np.concatenate([[0], rng.permutation(9) + 1]).astype(np.int64)


def permute_colours(grid: np.ndarray, perm: np.ndarray) -> np.ndarray:
    return np.asarray(perm)[np.asarray(grid)]


def unpermute_colours(grid: np.ndarray, perm: np.ndarray) -> np.ndarray:
    return np.argsort(perm)[np.asarray(grid)]
