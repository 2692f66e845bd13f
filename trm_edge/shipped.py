"""The models shipped inside the package, and the held-out puzzles each was measured on.

Each was trained with this repository's own recipe and command (both are in its metadata:
`trm-edge info` shows them). Its `.heldout.npz` holds 1000 generated puzzles from the same
generator and seed as its training data but a disjoint index range: none of them was trained
on or evaluated during training.

- `sudoku-small`: 9x9 Sudokus with 30-40 givens (recipe `sudoku-small-cpu`); its held-out file
  holds digits (`puzzles`, `solutions`).
- `maze-small`: 10x10 mazes with an S-G path of 16+ (recipe `maze-small-cpu`); its held-out file
  holds maze tokens (`inputs`, `labels`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from trm_edge.errors import TrmEdgeError

MODELS = Path(__file__).parent / "models"


@dataclass(frozen=True)
class ShippedModel:
    name: str  # file stem under trm_edge/models
    task: str  # the codec's task
    recipe: str  # the recipe that trained it
    held_out: str  # what its held-out puzzles are, in words

    @property
    def checkpoint(self) -> Path:
        return _existing(MODELS / f"{self.name}.safetensors")

    @property
    def heldout(self) -> Path:
        return _existing(MODELS / f"{self.name}.heldout.npz")


SHIPPED = {
    "sudoku": ShippedModel("sudoku-small", "sudoku", "sudoku-small-cpu",
                           "generated 9x9 Sudokus with 30-40 givens"),
    "maze": ShippedModel("maze-small", "maze", "maze-small-cpu",
                         "generated 10x10 mazes with an S-G path of 16+ cells"),
}


def shipped_model(task: str = "sudoku") -> ShippedModel:
    """A task's shipped model (sudoku, maze), or a shipped model by its name (sudoku-small)."""
    by_name = {m.name: m for m in SHIPPED.values()}
    if task not in SHIPPED and task not in by_name:
        raise TrmEdgeError(f"no shipped model for {task!r}: choose one of {', '.join(SHIPPED)} (or by name: "
                           f"{', '.join(by_name)})")
    return SHIPPED.get(task) or by_name[task]


def shipped_checkpoint(task: str = "sudoku") -> Path:
    return shipped_model(task).checkpoint


def shipped_heldout(task: str = "sudoku") -> Path:
    return shipped_model(task).heldout


def shipped_hard_examples() -> Path:
    """Hard Sudokus the shipped model solves only in another version (test-time versions)."""
    return _existing(MODELS / "sudoku-hard-examples.txt")


def _existing(path: Path) -> Path:
    if not path.is_file():
        raise TrmEdgeError(f"the shipped model file {path} is missing: reinstall trm-edge")
    return path
