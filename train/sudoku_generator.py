"""Offline 9x9 Sudoku generator: unique solutions, a chosen clue range, a measured difficulty.

Each puzzle starts from a random full grid (a randomised search on the empty grid), then cells
are emptied in random order, each removal kept only while the puzzle still has exactly one
solution. Difficulty is measured by the same solver: `guesses` counts the branch points (cells
with two or more candidates left after the cheapest-cell choice) it needs to prove uniqueness,
so 0 means solvable by naked singles alone.

Puzzle i depends only on (seed, i), not on how many are generated or in what chunks.
The search is compiled with numba: pure-Python search would take ~50 ms a puzzle.
"""

from __future__ import annotations

from collections.abc import Callable

import numba
import numpy as np

from trm_edge.errors import TrmEdgeError

ALL_DIGITS = 0x1FF
MAX_ATTEMPTS = 2000  # fresh grids tried per puzzle before the ranges are declared out of reach


@numba.njit(cache=True)
def _popcount(m: int) -> int:
    n = 0
    while m:
        m &= m - 1
        n += 1
    return n


@numba.njit(cache=True)
def _bit_index(bit: int) -> int:
    i = 0
    while bit > 1:
        bit >>= 1
        i += 1
    return i


@numba.njit(cache=True)
def _search(grid, limit, randomise, solution):  # type: ignore[no-untyped-def]
    """Count solutions of `grid` (81 digits, 0 blank) up to `limit`; copy the first into `solution`.

    Returns (solutions found, guesses). Iterative depth-first search choosing the cell with the
    fewest candidates; `randomise` tries candidates in random order (used to make full grids).
    """
    g = grid.copy()
    rows = np.zeros(9, np.int64)
    cols = np.zeros(9, np.int64)
    boxes = np.zeros(9, np.int64)
    n = 0
    for i in range(81):
        v = g[i]
        if v == 0:
            n += 1
            continue
        bit = 1 << (v - 1)
        r, c = i // 9, i % 9
        b = (r // 3) * 3 + c // 3
        if (rows[r] | cols[c] | boxes[b]) & bit:
            return 0, 0  # clashing givens
        rows[r] |= bit
        cols[c] |= bit
        boxes[b] |= bit
    order = np.empty(n + 1, np.int64)
    cand = np.zeros(n + 1, np.int64)
    count = 0
    guesses = 0
    d = 0
    descend = True
    while True:
        if descend:
            if d == n:
                count += 1
                if count == 1:
                    solution[:] = g
                if count >= limit:
                    return count, guesses
                d -= 1
                descend = False
                if d < 0:
                    return count, guesses
                continue
            best = -1
            best_count = 10
            best_mask = 0
            for i in range(81):
                if g[i] != 0:
                    continue
                r, c = i // 9, i % 9
                m = ~(rows[r] | cols[c] | boxes[(r // 3) * 3 + c // 3]) & ALL_DIGITS
                pc = _popcount(m)
                if pc < best_count:
                    best, best_count, best_mask = i, pc, m
                    if pc <= 1:
                        break
            if best_count == 0:
                d -= 1
                descend = False
                if d < 0:
                    return count, guesses
                continue
            if best_count > 1:
                guesses += 1
            order[d] = best
            cand[d] = best_mask
        else:
            i = order[d]
            bit = 1 << (g[i] - 1)
            r, c = i // 9, i % 9
            rows[r] &= ~bit
            cols[c] &= ~bit
            boxes[(r // 3) * 3 + c // 3] &= ~bit
            g[i] = 0
        m = cand[d]
        if m == 0:
            d -= 1
            descend = False
            if d < 0:
                return count, guesses
            continue
        if randomise:
            rest = m
            for _ in range(np.random.randint(_popcount(m))):
                rest &= rest - 1  # drop the lowest candidates, then take the next one
            bit = rest & -rest
        else:
            bit = m & -m
        cand[d] = m ^ bit
        i = order[d]
        r, c = i // 9, i % 9
        g[i] = _bit_index(bit) + 1
        rows[r] |= bit
        cols[c] |= bit
        boxes[(r // 3) * 3 + c // 3] |= bit
        d += 1
        descend = True


@numba.njit(cache=True)
def _generate(seed, first, count, min_givens, max_givens, min_guesses, max_guesses, puzzles, solutions, guesses):  # type: ignore[no-untyped-def]
    scratch = np.zeros(81, np.int8)
    empty = np.zeros(81, np.int8)
    for k in range(count):
        np.random.seed((seed * 1000003 + first + k) % 4294967296)
        guesses[k] = -1  # stays -1 when no grid reaches the clue and guess ranges
        for _attempt in range(MAX_ATTEMPTS):
            full = np.zeros(81, np.int8)
            _search(empty, 1, True, full)
            target = np.random.randint(min_givens, max_givens + 1)
            puzzle = full.copy()
            givens = 81
            for i in np.random.permutation(81):
                if givens == target:
                    break
                keep = puzzle[i]
                puzzle[i] = 0
                found, _ = _search(puzzle, 2, False, scratch)
                if found == 1:
                    givens -= 1
                else:
                    puzzle[i] = keep
            if givens != target:
                continue  # could not empty enough cells with a unique solution: draw a new grid
            _, needed = _search(puzzle, 2, False, scratch)
            if min_guesses <= needed <= max_guesses:
                puzzles[k] = puzzle
                solutions[k] = full
                guesses[k] = needed
                break


def generate_sudokus(
    count: int,
    seed: int = 0,
    givens: tuple[int, int] = (30, 40),
    guesses: tuple[int, int] = (0, 1_000_000),
    first: int = 0,
    progress: Callable[[int], None] | None = None,
    chunk: int = 256,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(puzzles, solutions, guesses): (count, 81) int8 digits (0 blank), and (count,) int32.

    `givens` is the inclusive clue range, `guesses` the inclusive range of search branch points.
    `first` offsets the puzzle index, so disjoint index ranges of one seed give disjoint streams.
    """
    lo, hi = givens
    if not 17 <= lo <= hi <= 80:
        raise TrmEdgeError(f"givens range {givens} must satisfy 17 <= low <= high <= 80")
    if not 0 <= guesses[0] <= guesses[1]:
        raise TrmEdgeError(f"guesses range {guesses} must satisfy 0 <= low <= high")
    puzzles = np.zeros((count, 81), np.int8)
    solutions = np.zeros((count, 81), np.int8)
    needed = np.zeros(count, np.int32)
    for start in range(0, count, chunk):
        n = min(chunk, count - start)
        _generate(
            seed, first + start, n, lo, hi, guesses[0], guesses[1],
            puzzles[start : start + n], solutions[start : start + n], needed[start : start + n],
        )
        if (needed[start : start + n] < 0).any():
            raise TrmEdgeError(
                f"no puzzle with {lo}-{hi} givens and {guesses[0]}-{guesses[1]} guesses found in {MAX_ATTEMPTS} "
                "grids: widen the ranges (removing clues one at a time rarely gets below ~21 givens)"
            )
        if progress is not None:
            progress(n)
    return puzzles, solutions, needed


def count_solutions(puzzle: np.ndarray, limit: int = 2) -> tuple[int, int]:
    """(number of solutions up to `limit`, search guesses) of one puzzle (81 digits, 0 blank)."""
    scratch = np.zeros(81, np.int8)
    found, needed = _search(np.asarray(puzzle, dtype=np.int8).reshape(81), limit, False, scratch)
    return int(found), int(needed)


def solve(puzzle: np.ndarray) -> np.ndarray | None:
    """The solution (81 digits) of a puzzle, or None when it has none."""
    solution = np.zeros(81, np.int8)
    found, _ = _search(np.asarray(puzzle, dtype=np.int8).reshape(81), 1, False, solution)
    return solution if found else None
