"""9x9 Sudoku: 81 characters, digits 1-9, '.' or '0' for blanks; any whitespace is ignored.

Tokens are the official ones: 0 padding, 1 blank, d + 1 for digit d.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trm_edge.tasks.base import BaseCodec, PuzzleError, check_pair

BLANKS = ".0"
# Clues of the puzzles `sample_puzzles` makes: from near Sudoku-Extreme's (17-30) to easy ones.
SAMPLE_GIVENS = (22, 40)
DIGITS = "0123456789"  # ASCII only: str.isdigit() also admits '²', '٤' and '４'.


class SudokuCodec(BaseCodec):
    name = "sudoku"
    seq_len = 81
    vocab_size = 11
    official_shape = (81, 11)
    legend = ("bold: givens; cyan: filled in by the model; verified: a complete, valid grid that keeps the givens "
              "(checked without the solution)")

    def encode(self, text: str) -> np.ndarray:
        return self.digits_to_tokens(self.parse_digits(text))

    @staticmethod
    def parse_digits(text: str) -> np.ndarray:
        """(81,) digits with 0 for blank; checks length, characters and clashing givens."""
        cells = "".join(text.split())
        if len(cells) != 81:
            raise PuzzleError(f"a sudoku has 81 cells, this one has {len(cells)} (blanks are '.' or '0')")
        for i, ch in enumerate(cells):
            if not (ch in DIGITS or ch in BLANKS):
                raise PuzzleError(
                    f"cell {i + 1} (row {i // 9 + 1}, column {i % 9 + 1}) is {ch!r}: use digits 1-9 and '.' or '0'"
                )
        digits = np.array([0 if ch in BLANKS else int(ch) for ch in cells], dtype=np.int32)
        check_givens(digits.reshape(9, 9))
        return digits

    @staticmethod
    def digits_to_tokens(digits: np.ndarray) -> np.ndarray:
        return (np.asarray(digits, dtype=np.int32) + 1).reshape(-1)

    def decode(self, tokens: np.ndarray) -> str:
        digits = np.clip(np.asarray(tokens).reshape(-1) - 1, 0, 9)
        return "".join(str(d) if d else "." for d in digits)

    def render(self, puzzle: np.ndarray, answer: np.ndarray) -> str:
        given = np.asarray(puzzle).reshape(9, 9) > 1
        shown = np.clip(np.asarray(answer).reshape(9, 9) - 1, 0, 9)
        lines = []
        for r in range(9):
            if r and r % 3 == 0:
                lines.append("------+-------+------")
            cells = []
            for c in range(9):
                if c and c % 3 == 0:
                    cells.append("|")
                d = str(shown[r, c]) if shown[r, c] else "."
                cells.append(f"[bold]{d}[/]" if given[r, c] else f"[cyan]{d}[/]")
            lines.append(" ".join(cells))
        return "\n".join(lines)

    can_verify = True

    def verify(self, puzzles: np.ndarray, answers: np.ndarray) -> np.ndarray:
        """Complete grids with each digit once per row, column and box that keep every given.
        A puzzle with one solution has no other such grid, so a verified answer is the answer."""
        puzzles, answers = check_pair(puzzles, answers, self.seq_len)
        given = puzzles.reshape(-1, 9, 9) - 1
        grid = answers.reshape(-1, 9, 9) - 1
        keeps_givens = ~((given > 0) & (grid != given)).any(axis=(1, 2))
        in_range = ((grid >= 1) & (grid <= 9)).all(axis=(1, 2))
        _, rows, columns, boxes = digit_counts(grid)  # every unit holds each digit exactly once
        units_hold_each_once = ((rows == 1).all(axis=(1, 2, 3)) & (columns == 1).all(axis=(1, 2, 3))
                                & (boxes == 1).all(axis=(1, 2, 3, 4, 5)))
        return keeps_givens & in_range & units_hold_each_once

    def symmetries(self, count: int, seed: int = 0) -> list[Any]:
        """Relabel the digits, shuffle bands, rows, stacks and columns, transpose (symmetry.py)."""
        from trm_edge.tasks.symmetry import SudokuTransform, check_count

        rng = np.random.default_rng(seed)
        return [SudokuTransform.identity(), *(SudokuTransform.random(rng) for _ in range(check_count(count) - 1))]

    def exactly_once_units(self) -> tuple[np.ndarray, np.ndarray]:
        """The 27 units (9 rows, 9 columns, 9 boxes) and the digit tokens 2-10: `verify` as a graph computes it."""
        r, c = np.divmod(np.arange(81), 9)
        units = np.zeros((27, 81), dtype=bool)
        units[r, np.arange(81)] = True
        units[9 + c, np.arange(81)] = True
        units[18 + 3 * (r // 3) + c // 3, np.arange(81)] = True
        return units, np.arange(2, 11)

    def sample_puzzles(self, count: int, seed: int = 0, givens: tuple[int, int] = SAMPLE_GIVENS) -> np.ndarray:
        """Sudokus with `givens` (inclusive range) clues: a full grid (one valid grid moved by a
        random map of the Sudoku symmetry group, so every digit, row and box is shuffled), then
        clues kept at random cells. Each has a solution (the grid), not always only one: enough to
        validate an export on, not a benchmark (train/sudoku_generator.py makes those)."""
        from trm_edge.tasks.symmetry import SudokuTransform

        rng = np.random.default_rng(seed)
        r, c = np.divmod(np.arange(81), 9)
        solved = (3 * (r % 3) + r // 3 + c) % 9 + 1  # the textbook valid grid
        puzzles = np.zeros((count, 81), np.int32)
        for i in range(count):
            grid = SudokuTransform.random(rng).apply(solved)
            keep = rng.choice(81, size=int(rng.integers(givens[0], givens[1] + 1)), replace=False)
            puzzles[i, keep] = grid[keep]
        return self.digits_to_tokens(puzzles).reshape(count, 81)


def digit_counts(grid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For digit grids (N, 9, 9): the one-hot digits (N, 9, 9, 9) and each digit's count in every row
    (N, 9, 1, 9), column (N, 1, 9, 9) and box (N, 3, 1, 3, 1, 9), shaped to broadcast back to the cells."""
    onehot = grid[..., None] == np.arange(1, 10)
    boxes = onehot.reshape(-1, 3, 3, 3, 3, 9).sum(axis=(2, 4), keepdims=True)
    return onehot, onehot.sum(axis=2, keepdims=True), onehot.sum(axis=1, keepdims=True), boxes


def rule_breaks(puzzles: np.ndarray, answers: np.ndarray) -> np.ndarray:
    """(N,) how far each answer is from a solution by the rules alone: its cells that are blank or
    out of range, change a given, or repeat a digit within their row, column or box (a cell counted
    once however many rules it breaks). 0 exactly when `SudokuCodec.verify` holds."""
    puzzles, answers = check_pair(puzzles, answers, 81)
    given = puzzles.reshape(-1, 9, 9) - 1
    grid = answers.reshape(-1, 9, 9) - 1
    bad = (grid < 1) | (grid > 9) | ((given > 0) & (grid != given))
    onehot, rows, columns, boxes = digit_counts(grid)
    in_box_twice = np.broadcast_to(boxes > 1, (len(grid), 3, 3, 3, 3, 9)).reshape(-1, 9, 9, 9)
    repeats = (onehot & ((rows > 1) | (columns > 1) | in_box_twice)).any(axis=-1)
    return (bad | repeats).sum(axis=(1, 2))


def check_givens(grid: np.ndarray) -> None:
    """Two equal givens in one row, column or box make a sudoku unsolvable: say where."""
    for r in range(9):
        _no_repeat(grid[r], f"row {r + 1} (columns {{}})")
    for c in range(9):
        _no_repeat(grid[:, c], f"column {c + 1} (rows {{}})")
    for b in range(9):
        br, bc = 3 * (b // 3), 3 * (b % 3)
        _no_repeat(grid[br : br + 3, bc : bc + 3].reshape(-1), f"box {b + 1} (cells {{}})")


def _no_repeat(line: np.ndarray, where: str) -> None:
    """`where` names the unit, with {} for the repeated positions."""
    for digit in range(1, 10):
        at = np.flatnonzero(line == digit) + 1
        if len(at) > 1:
            raise PuzzleError(f"unsolvable: {digit} appears twice in {where.format(' and '.join(map(str, at)))}")
