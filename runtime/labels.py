"""Held-out puzzles with their answers, as the runtime's calibration and benchmarks read them.

One `.npz` in either layout:
- official tokens: `inputs` (N, seq_len), `labels` (N, seq_len) [, `puzzle_identifiers` (N,)];
  label 0 (padding) is ignored when scoring, as the official evaluation ignores it;
- Sudoku digits: `puzzles`, `solutions` (N, 81), 0 for blank (the trained fixture's layout).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trm_edge.errors import TrmEdgeError


@dataclass
class LabelledPuzzles:
    inputs: np.ndarray  # (N, seq_len) int32 tokens
    labels: np.ndarray | None  # (N, seq_len) int32 tokens, 0 = ignored
    puzzle_identifiers: np.ndarray  # (N,) int32

    def __len__(self) -> int:
        return len(self.inputs)

    def head(self, n: int) -> LabelledPuzzles:
        return LabelledPuzzles(
            self.inputs[:n], None if self.labels is None else self.labels[:n], self.puzzle_identifiers[:n]
        )


def load_puzzles(path: str | Path, seq_len: int | None = None) -> LabelledPuzzles:
    path = Path(path)
    try:
        data = np.load(path)
    except (OSError, ValueError) as exc:
        raise TrmEdgeError(f"cannot read puzzles from {path}: {exc}") from None
    files = set(data.files)
    if {"inputs"} <= files:
        inputs = data["inputs"]
        labels = data["labels"] if "labels" in files else None
    elif {"puzzles"} <= files:
        inputs = data["puzzles"].astype(np.int32) + 1
        labels = data["solutions"].astype(np.int32) + 1 if "solutions" in files else None
    else:
        raise TrmEdgeError(
            f"{path} has neither 'inputs' (official tokens) nor 'puzzles' (Sudoku digits); "
            f"it has {', '.join(sorted(files))}"
        )
    inputs = np.asarray(inputs, dtype=np.int32).reshape(len(inputs), -1)
    if seq_len is not None and inputs.shape[1] != seq_len:
        raise TrmEdgeError(f"{path}: puzzles have {inputs.shape[1]} tokens, the model takes {seq_len}")
    if labels is not None:
        labels = np.asarray(labels, dtype=np.int32).reshape(inputs.shape)
    ids = data["puzzle_identifiers"] if "puzzle_identifiers" in files else np.zeros(len(inputs))
    return LabelledPuzzles(inputs, labels, np.asarray(ids, dtype=np.int32))


def exact(answers: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per puzzle: every labelled cell right (padding, label 0, ignored)."""
    return ((answers == labels) | (labels == 0)).all(axis=-1)
