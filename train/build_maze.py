"""Maze datasets: generated offline, or read from Maze-Hard CSV files.

Tokens follow the Maze codec (1 '#', 2 ' ', 3 'S', 4 'G', 5 'o'); one shared puzzle identifier.
Optional augmentation adds the 7 other symmetries of the square of each training maze (the
paper trains Maze-Hard without it).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from trm_edge.tasks.arc_versions import dihedral
from trm_edge.train.dataset import TEST_INDEX_OFFSET, DatasetInfo, Split, save_dataset, unseen_rows
from trm_edge.train.maze_generator import generate_mazes
from trm_edge.train.sources import read_maze_csv


def augment_mazes(inputs: np.ndarray, labels: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """All 8 symmetries of every maze, the identity first."""
    grids_in = inputs.reshape(-1, size, size)
    grids_out = labels.reshape(-1, size, size)
    ins = [dihedral(grids_in, k).reshape(len(inputs), -1) for k in range(8)]
    outs = [dihedral(grids_out, k).reshape(len(labels), -1) for k in range(8)]
    return np.concatenate(ins), np.concatenate(outs)


def _split(inputs: np.ndarray, labels: np.ndarray) -> Split:
    return Split(inputs, labels, np.zeros(len(inputs), np.int32))


def _info(size: int, built_with: dict) -> DatasetInfo:  # type: ignore[type-arg]
    return DatasetInfo(task="maze", seq_len=size * size, vocab_size=6, num_puzzle_identifiers=1,
                       task_options={"size": size}, built_with=built_with)


def build_generated_maze(
    out: str | Path, train: int, test: int, size: int = 30, min_path: int = 90, seed: int = 0,
    augment: bool = False, progress: Callable[[int], None] | None = None,
) -> Path:
    train_in, train_out, _ = generate_mazes(train, size, min_path, seed, progress=progress)
    test_in, test_out, _ = generate_mazes(test, size, min_path, seed, first=TEST_INDEX_OFFSET, progress=progress)
    keep = unseen_rows(train_in, test_in)
    if augment:
        train_in, train_out = augment_mazes(train_in, train_out, size)
    built = {"builder": "maze-generate", "train": train, "test": test, "size": size, "min_path": min_path,
             "seed": seed, "augment": augment}
    return save_dataset(out, _info(size, built),
                        {"train": _split(train_in, train_out), "test": _split(test_in[keep], test_out[keep])})


def build_maze_csv(out: str | Path, train_csv: str | Path, test_csv: str | Path | None = None,
                   augment: bool = False) -> Path:
    train_in, train_out = read_maze_csv(train_csv)
    size = round(train_in.shape[1] ** 0.5)
    splits = {}
    if test_csv is not None:
        splits["test"] = _split(*read_maze_csv(test_csv))
    if augment:
        train_in, train_out = augment_mazes(train_in, train_out, size)
    splits["train"] = _split(train_in, train_out)
    built = {"builder": "maze-csv", "train_csv": str(train_csv), "test_csv": str(test_csv), "augment": augment}
    return save_dataset(out, _info(size, built), splits)
