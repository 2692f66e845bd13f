"""Task codecs: puzzle text <-> the official token encoding, shared by training and the runtime.

Pure numpy (no torch), so the runtime on a device uses the same code the trainer used.
"""

from __future__ import annotations

from trm_edge.tasks.arc import ArcCodec
from trm_edge.tasks.base import BaseCodec, CannotVerifyError, Codec, PuzzleError
from trm_edge.tasks.maze import MazeCodec
from trm_edge.tasks.registry import TASKS, get_codec, register
from trm_edge.tasks.sudoku import SudokuCodec

__all__ = ["TASKS", "ArcCodec", "BaseCodec", "CannotVerifyError", "Codec", "MazeCodec", "PuzzleError", "SudokuCodec",
           "get_codec", "register"]
