"""The models shipped inside the package, and the held-out puzzles each was measured on.

Each was trained with this repository's own recipe and command (both are in its metadata:
`trm-edge info` shows them). Its `.heldout.npz` holds 1000 generated puzzles from the same
generator and seed as its training data but a disjoint index range: none of them was trained
on or evaluated during training.

- `sudoku-small`: 9x9 Sudokus with 30-40 givens (recipe `sudoku-small-cpu`); its held-out file
  holds digits (`puzzles`, `solutions`).
- `maze-small`: 10x10 mazes with an S-G path of 16+ (recipe `maze-small-cpu`); its held-out file
  holds maze tokens (`inputs`, `labels`).
- `sudoku-small-int8`, `maze-small-int8`: their int8 quantization-aware fine-tunes, for
  `trm-edge export --precision int8`; measured on the same held-out puzzles as the float models
  they came from (docs/int8.md). The maze's is one recipe (`maze-small-int8`); the Sudoku's is two
  stages, `sudoku-small-int8` (22-40 givens) then `sudoku-small-int8-hard` (22-32) from its output.
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
    heldout_of: str = ""  # a fine-tune is measured on the held-out puzzles of the model it came from

    @property
    def checkpoint(self) -> Path:
        return _existing(MODELS / f"{self.name}.safetensors")

    @property
    def heldout(self) -> Path:
        return _existing(MODELS / f"{self.heldout_of or self.name}.heldout.npz")


SHIPPED = {m.name: m for m in (
    ShippedModel("sudoku-small", "sudoku", "sudoku-small-cpu", "generated 9x9 Sudokus with 30-40 givens"),
    ShippedModel("maze-small", "maze", "maze-small-cpu", "generated 10x10 mazes with an S-G path of 16+ cells"),
    ShippedModel("sudoku-small-int8", "sudoku", "sudoku-small-int8-hard", "generated 9x9 Sudokus with 30-40 givens",
                 heldout_of="sudoku-small"),
    ShippedModel("maze-small-int8", "maze", "maze-small-int8", "generated 10x10 mazes with an S-G path of 16+ cells",
                 heldout_of="maze-small"),
)}
# What a task alone names: its default model (the demo's). Models are otherwise named by their name.
TASK_DEFAULTS = {"sudoku": "sudoku-small", "maze": "maze-small"}


def shipped_names(separator: str = " | ") -> str:
    """Every shipped model's name, for help and errors: the commands list them from here."""
    return separator.join(SHIPPED)


def shipped_model(name_or_task: str = "sudoku") -> ShippedModel:
    """A task's default shipped model (sudoku, maze), or a shipped model by its name (sudoku-small)."""
    name = TASK_DEFAULTS.get(name_or_task, name_or_task)
    if name not in SHIPPED:
        raise TrmEdgeError(f"no shipped model {name_or_task!r}: name a task ({', '.join(TASK_DEFAULTS)}) or a "
                           f"model ({shipped_names(', ')})")
    return SHIPPED[name]


def shipped_checkpoint(name_or_task: str = "sudoku") -> Path:
    return shipped_model(name_or_task).checkpoint


def shipped_heldout(name_or_task: str = "sudoku") -> Path:
    return shipped_model(name_or_task).heldout


def checkpoint_path(text: str | Path) -> Path:
    """A checkpoint a user names: a file path, or shipped:NAME for a model shipped in the package."""
    text = str(text)
    return shipped_checkpoint(text.removeprefix("shipped:")) if text.startswith("shipped:") else Path(text)


def shipped_hard_examples() -> Path:
    """Hard Sudokus the shipped model solves only in another version (test-time versions)."""
    return _existing(MODELS / "sudoku-hard-examples.txt")


def _existing(path: Path) -> Path:
    if not path.is_file():
        raise TrmEdgeError(f"the shipped model file {path} is missing: reinstall trm-edge")
    return path
