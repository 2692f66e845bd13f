"""Sudoku datasets: generated offline, or read from Sudoku-Extreme-style CSV files.

Tokens follow the Sudoku codec: 1 blank, d + 1 for digit d. Every puzzle has one shared puzzle
identifier (0), as in the official Sudoku builder. Augmented training copies (the official
symmetry shuffles) are optional; the test split is never augmented.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from trm_edge.tasks.symmetry import SudokuTransform
from trm_edge.train.dataset import TEST_INDEX_OFFSET, DatasetInfo, Split, save_dataset, unseen_rows
from trm_edge.train.sources import read_sudoku_csv
from trm_edge.train.sudoku_generator import generate_sudokus


def _split(puzzles: np.ndarray, solutions: np.ndarray) -> Split:
    n = len(puzzles)
    return Split(puzzles.astype(np.uint8) + 1, solutions.astype(np.uint8) + 1, np.zeros(n, np.int32))


def augment_sudokus(
    puzzles: np.ndarray, solutions: np.ndarray, copies: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """The originals followed by `copies` random symmetry shuffles of each (digits, 0 blank)."""
    rng = np.random.default_rng(seed)
    out_p, out_s = [puzzles], [solutions]
    for _ in range(copies):
        p = np.empty_like(puzzles)
        s = np.empty_like(solutions)
        for i in range(len(puzzles)):
            t = SudokuTransform.random(rng)
            p[i], s[i] = t.apply(puzzles[i]), t.apply(solutions[i])
        out_p.append(p)
        out_s.append(s)
    return np.concatenate(out_p), np.concatenate(out_s)


def build_generated_sudoku(
    out: str | Path,
    train: int,
    test: int,
    givens: tuple[int, int] = (30, 40),
    guesses: tuple[int, int] = (0, 1_000_000),
    seed: int = 0,
    augment: int = 0,
    progress: Callable[[int], None] | None = None,
) -> Path:
    train_p, train_s, _ = generate_sudokus(train, seed, givens, guesses, progress=progress)
    test_p, test_s, _ = generate_sudokus(test, seed, givens, guesses, first=TEST_INDEX_OFFSET, progress=progress)
    keep = unseen_rows(train_p, test_p)
    test_p, test_s = test_p[keep], test_s[keep]
    if augment:
        train_p, train_s = augment_sudokus(train_p, train_s, augment, seed)
    info = DatasetInfo(
        task="sudoku", seq_len=81, vocab_size=11, num_puzzle_identifiers=1,
        built_with={"builder": "sudoku-generate", "train": train, "test": test, "givens": list(givens),
                    "guesses": list(guesses), "seed": seed, "augment": augment},
    )
    return save_dataset(out, info, {"train": _split(train_p, train_s), "test": _split(test_p, test_s)})


def build_sudoku_csv(
    out: str | Path,
    train_csv: str | Path,
    test_csv: str | Path | None = None,
    subsample: int = 0,
    augment: int = 0,
    seed: int = 0,
) -> Path:
    """From Sudoku-Extreme CSVs; `subsample` draws that many training puzzles (the paper's 1k)."""
    train_p, train_s, _ = read_sudoku_csv(train_csv)
    if subsample and subsample < len(train_p):
        pick = np.sort(np.random.default_rng(seed).choice(len(train_p), subsample, replace=False))
        train_p, train_s = train_p[pick], train_s[pick]
    splits = {}
    if test_csv is not None:
        test_p, test_s, _ = read_sudoku_csv(test_csv)
        keep = unseen_rows(train_p, test_p)
        splits["test"] = _split(test_p[keep], test_s[keep])
    if augment:
        train_p, train_s = augment_sudokus(train_p, train_s, augment, seed)
    splits["train"] = _split(train_p, train_s)
    info = DatasetInfo(
        task="sudoku", seq_len=81, vocab_size=11, num_puzzle_identifiers=1,
        built_with={"builder": "sudoku-csv", "train_csv": str(train_csv), "test_csv": str(test_csv),
                    "subsample": subsample, "augment": augment, "seed": seed},
    )
    return save_dataset(out, info, splits)
