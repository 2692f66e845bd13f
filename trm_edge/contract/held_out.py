"""Held-out puzzles with their answers, as the runtime's calibration and benchmarks read them.

One `.npz` in either layout:
- official tokens: `inputs` (N, seq_len), `labels` (N, seq_len) [, `puzzle_identifiers` (N,)];
  label 0 (padding) is ignored when scoring, as the official evaluation ignores it;
- Sudoku digits: `puzzles`, `solutions` (N, 81), 0 for blank (the trained fixture's layout).
"""

from __future__ import annotations

import zipfile
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


def load_puzzles(path: str | Path, seq_len: int | None = None, vocab_size: int | None = None) -> LabelledPuzzles:
    """Puzzles (and labels, if any) from an `.npz`, every array checked before it is used:
    integers (never cast from floats, strings or objects), in range (a value is never wrapped
    into another by a narrowing cast), one row per puzzle, at least one puzzle."""
    path = Path(path)
    try:
        data = np.load(path, allow_pickle=False)
        arrays = {name: data[name] for name in data.files} if hasattr(data, "files") else None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:  # numpy's own errors, for a bad file
        raise TrmEdgeError(f"cannot read puzzles from {path}: {exc} (an .npz from numpy.savez is expected)") from None
    if arrays is None:
        raise TrmEdgeError(
            f"cannot read puzzles from {path}: it holds a single array, not named arrays (an .npz from numpy.savez "
            "is expected)"
        )
    if "inputs" in arrays:
        inputs = _tokens(path, "inputs", arrays["inputs"], 0, vocab_size)
        labels = _tokens(path, "labels", arrays["labels"], 0, vocab_size) if "labels" in arrays else None
    elif "puzzles" in arrays:
        inputs = _tokens(path, "puzzles", arrays["puzzles"], 0, 10) + 1
        labels = _tokens(path, "solutions", arrays["solutions"], 0, 10) + 1 if "solutions" in arrays else None
    else:
        raise TrmEdgeError(
            f"{path} has neither 'inputs' (official tokens) nor 'puzzles' (Sudoku digits); "
            f"it has {', '.join(sorted(arrays)) or 'no arrays'}"
        )
    if seq_len is not None and inputs.shape[1] != seq_len:
        raise TrmEdgeError(f"{path}: puzzles have {inputs.shape[1]} tokens, the model takes {seq_len}")
    if labels is not None and labels.shape != inputs.shape:
        raise TrmEdgeError(
            f"{path}: labels have shape {labels.shape} but the puzzles {inputs.shape}: one label per token"
        )
    if "puzzle_identifiers" in arrays:
        ids = _integers(path, "puzzle_identifiers", arrays["puzzle_identifiers"]).reshape(-1)
        if len(ids) != len(inputs):
            raise TrmEdgeError(f"{path}: {len(ids)} puzzle_identifiers for {len(inputs)} puzzles: give one per puzzle")
        if ids.min() < 0 or ids.max() >= 2**31:
            raise TrmEdgeError(f"{path}: puzzle_identifiers must lie in [0, 2**31)")
    else:
        ids = np.zeros(len(inputs))
    return LabelledPuzzles(inputs, labels, np.asarray(ids, dtype=np.int32))


def _integers(path: Path, name: str, array: np.ndarray) -> np.ndarray:
    if array.dtype.kind not in "iu":
        raise TrmEdgeError(f"{path}: '{name}' holds {array.dtype} values; token arrays must be integers")
    if array.size == 0:
        raise TrmEdgeError(f"{path}: '{name}' is empty: give at least one puzzle")
    return array


def _tokens(path: Path, name: str, array: np.ndarray, low: int, high: int | None) -> np.ndarray:
    """(N, seq_len) int32 tokens from `array`, checked to lie in [low, high) before the cast."""
    array = _integers(path, name, array)
    if array.ndim == 0:
        raise TrmEdgeError(f"{path}: '{name}' is a single number; give an array of shape (puzzles, tokens)")
    if array.ndim == 1:
        array = array.reshape(1, -1)
    elif array.ndim != 2:
        array = array.reshape(len(array), -1)
    top = 2**31 if high is None else high
    if array.min() < low or array.max() >= top:
        raise TrmEdgeError(
            f"{path}: '{name}' has values in [{array.min()}, {array.max()}]; they must lie in [{low}, {top})"
            + (" (the model's vocabulary)" if high is not None and name in ("inputs", "labels") else "")
        )
    return array.astype(np.int32)


def exact(answers: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per puzzle: every labelled cell right (padding, label 0, ignored)."""
    return ((answers == labels) | (labels == 0)).all(axis=-1)
