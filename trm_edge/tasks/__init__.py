"""Task codecs: puzzle text <-> the official token encoding, shared by training and the runtime.

Pure numpy (no torch), so the runtime on a device uses the same code the trainer used.
"""

from __future__ import annotations

from typing import Any

from trm_edge.errors import TrmEdgeError
from trm_edge.tasks.arc import ArcCodec
from trm_edge.tasks.base import CannotVerifyError, Codec, PuzzleError
from trm_edge.tasks.maze import MazeCodec
from trm_edge.tasks.sudoku import SudokuCodec

__all__ = ["ArcCodec", "CannotVerifyError", "Codec", "MazeCodec", "PuzzleError", "SudokuCodec", "get_codec"]


def get_codec(name: str, options: dict[str, Any] | None = None) -> Codec:
    """The codec a model's config names (`task`, `task_options`)."""
    options = options or {}
    if name == "sudoku":
        return SudokuCodec()
    if name == "maze":
        return MazeCodec(**options)
    if name == "arc":
        return ArcCodec(**options)
    raise TrmEdgeError(f"task {name!r} has no puzzle codec (known: sudoku, maze, arc); give raw tokens instead (--npz)")
