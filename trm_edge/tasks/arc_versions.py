"""The augmented versions of an ARC task, named as the official dataset builder names them.

An ARC model is trained on many versions of each task: the task's grids recoloured (a permutation
of colours 1-9; 0, the background, stays) and then moved by one of the 8 symmetries of the square.
Each version has its own puzzle identifier, whose embedding was learnt from that version's
demonstrations, so a test input must be asked in the version's frame, with the version's
identifier, and its answer mapped back.

Names (the official `identifiers.json`: a list, index = puzzle identifier):
- `<blank>` at index 0 (no puzzle);
- `TASK` for the task as given (the identity version);
- `TASK|||tD|||CCCCCCCCCC` for a version: D is the symmetry (numbered as below), the ten digits
  are the new colour of each colour 0-9.

Symmetries, numbered as the official builder numbers them (the numbers are part of the names):
0 identity, 1-3 quarter turns counter-clockwise (numpy's rot90 k times), 4 left-right mirror,
5 up-down mirror, 6 transpose, 7 anti-transpose.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from trm_edge.errors import TrmEdgeError

SEPARATOR = "|||"
BLANK = "<blank>"
IDENTITY_COLOURS = tuple(range(10))
# The symmetry that undoes each symmetry (turns undo each other; mirrors undo themselves).
DIHEDRAL_INVERSE = (0, 3, 2, 1, 4, 5, 6, 7)


class ArcVersionError(TrmEdgeError):
    """A version name or transform that does not follow the official grammar."""


def dihedral(grid: np.ndarray, tid: int) -> np.ndarray:
    """Symmetry `tid` (0-7, official numbering) of the last two axes of `grid`."""
    g = np.asarray(grid)
    if tid in (0, 1, 2, 3):
        moved = np.rot90(g, tid, axes=(-2, -1))
    elif tid == 4:
        moved = np.flip(g, axis=-1)
    elif tid == 5:
        moved = np.flip(g, axis=-2)
    elif tid == 6:
        moved = np.swapaxes(g, -2, -1)
    elif tid == 7:
        moved = np.flip(np.rot90(g, 1, axes=(-2, -1)), axis=-1)
    else:
        raise ArcVersionError(f"symmetry ids are 0-7, got {tid}")
    return np.ascontiguousarray(moved)


def dihedral_inverse(grid: np.ndarray, tid: int) -> np.ndarray:
    return dihedral(grid, DIHEDRAL_INVERSE[tid])


@dataclass(frozen=True)
class ArcVersion:
    """One version of a task: recolour by `colours` (new colour of each colour), then `symmetry`."""

    task: str
    symmetry: int = 0
    colours: tuple[int, ...] = IDENTITY_COLOURS

    def __post_init__(self) -> None:
        if not self.task or SEPARATOR in self.task:
            raise ArcVersionError(f"an ARC task name is non-empty and has no {SEPARATOR!r}: {self.task!r}")
        if self.symmetry not in range(8):
            raise ArcVersionError(f"version of {self.task}: symmetry ids are 0-7, got {self.symmetry}")
        if sorted(self.colours) != list(range(10)) or self.colours[0] != 0:
            raise ArcVersionError(
                f"version of {self.task}: the colour map must permute 0-9 and keep 0, got {self.colours}"
            )

    @property
    def is_identity(self) -> bool:
        return self.symmetry == 0 and self.colours == IDENTITY_COLOURS

    @property
    def name(self) -> str:
        if self.is_identity:
            return self.task
        return f"{self.task}{SEPARATOR}t{self.symmetry}{SEPARATOR}{''.join(map(str, self.colours))}"

    @classmethod
    def parse(cls, name: str) -> ArcVersion:
        """The version an official identifier name stands for; ArcVersionError if it is not one."""
        if not isinstance(name, str) or not name or name == BLANK:
            raise ArcVersionError(f"{name!r} names no ARC task version")
        if SEPARATOR not in name:
            return cls(name)
        parts = name.split(SEPARATOR)
        if len(parts) != 3 or not parts[1][:1] == "t" or not parts[1][1:].isdigit() or not parts[2].isdigit():
            raise ArcVersionError(
                f"{name!r} is not an official ARC version name (TASK, or TASK|||tD|||CCCCCCCCCC with D the "
                "symmetry 0-7 and ten digits for the colour map)"
            )
        return cls(parts[0], int(parts[1][1:]), tuple(int(c) for c in parts[2]))

    def forward(self, grid: np.ndarray | Sequence[Sequence[int]]) -> np.ndarray:
        """A grid of the task (colours 0-9) as this version shows it."""
        return dihedral(np.asarray(self.colours)[np.asarray(grid, dtype=np.int64)], self.symmetry)

    def inverse(self, grid: np.ndarray) -> np.ndarray:
        """A grid in this version's frame mapped back to the task's own frame."""
        back = dihedral_inverse(np.asarray(grid, dtype=np.int64), self.symmetry)
        return np.argsort(np.asarray(self.colours))[back]


@dataclass(frozen=True)
class IdentifiedVersion:
    identifier: int  # the puzzle identifier of this version in the model
    version: ArcVersion


def versions_by_task(names: Sequence[str]) -> dict[str, list[IdentifiedVersion]]:
    """Each task's versions from an identifier-name list (index = identifier): identity first,
    then in identifier order. Index 0 (the blank identifier) and blank names are skipped."""
    out: dict[str, list[IdentifiedVersion]] = {}
    for identifier, name in enumerate(names):
        if identifier == 0 or name == BLANK:
            continue
        version = ArcVersion.parse(name)
        out.setdefault(version.task, []).append(IdentifiedVersion(identifier, version))
    for versions in out.values():
        versions.sort(key=lambda v: (not v.version.is_identity, v.identifier))
    return out
