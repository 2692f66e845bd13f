"""The model shipped inside the package, and the held-out puzzles it was measured on.

`sudoku-small.safetensors` was trained with this repository's own recipe and command (both are
in its metadata: `trm-edge info` shows them); `sudoku-small.heldout.npz` holds 1000 generated
puzzles with 30-40 givens from the same generator and seed but a disjoint index range, none
of them in the training data nor in the puzzles evaluated during training.
"""

from __future__ import annotations

from pathlib import Path

from trm_edge.errors import TrmEdgeError

MODELS = Path(__file__).parent / "models"
SHIPPED_NAME = "sudoku-small"


def shipped_checkpoint() -> Path:
    return _existing(MODELS / f"{SHIPPED_NAME}.safetensors")


def shipped_heldout() -> Path:
    return _existing(MODELS / f"{SHIPPED_NAME}.heldout.npz")


def shipped_hard_examples() -> Path:
    """Hard puzzles the shipped model solves only in another version (test-time versions)."""
    return _existing(MODELS / "sudoku-hard-examples.txt")


def _existing(path: Path) -> Path:
    if not path.is_file():
        raise TrmEdgeError(f"the shipped model file {path} is missing: reinstall trm-edge")
    return path
