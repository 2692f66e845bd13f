"""ARC grids (up to 30x30, colours 0-9) in the official encoding.

A grid sits at the top-left of a 30x30 canvas: 0 padding, 1 end-of-grid marker (the row below and
the column right of the grid), 2-11 for colours 0-9. A puzzle's text is a grid as JSON
(`[[0, 1], [2, 3]]`); which ARC task it belongs to travels as its puzzle identifier.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from trm_edge.tasks.arc_tasks import check_grid
from trm_edge.tasks.base import BaseCodec, CannotVerifyError, PuzzleError

PAD, EOS, COLOUR0 = 0, 1, 2


class ArcCodec(BaseCodec):
    name = "arc"
    vocab_size = 12
    official_shape = (900, 12)
    square = True  # a size x size canvas: `size` is its option
    legend = "the answer grid's colours 0-9"

    def __init__(self, size: int = 30) -> None:
        self.size = size
        self.seq_len = size * size

    def encode(self, text: str) -> np.ndarray:
        try:
            grid = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise PuzzleError(f"an ARC grid is JSON like [[0, 1], [2, 3]]: {str(exc)[:200]}") from None
        return self.encode_grid(grid)

    def encode_grid(self, grid: list[list[int]]) -> np.ndarray:
        n = self.size
        check_grid(grid, "this ARC grid")
        if len(grid) > n or len(grid[0]) > n:
            raise PuzzleError(f"this model's ARC canvas is {n}x{n}; the grid is {len(grid)}x{len(grid[0])}")
        arr = np.array(grid, dtype=np.int64)
        canvas = np.full((n, n), PAD, dtype=np.int32)
        rows, cols = arr.shape
        canvas[:rows, :cols] = arr + COLOUR0
        if rows < n:
            canvas[rows, :cols] = EOS
        if cols < n:
            canvas[:rows, cols] = EOS
        return canvas.reshape(-1)

    def decode_grid(self, tokens: np.ndarray) -> list[list[int]]:
        """The answer grid: the colours up to the first end marker or padding in row and column 0."""
        canvas = np.asarray(tokens).reshape(self.size, self.size)
        cols = next((c for c in range(self.size) if not COLOUR0 <= canvas[0, c] <= COLOUR0 + 9), self.size)
        rows = next((r for r in range(self.size) if not COLOUR0 <= canvas[r, 0] <= COLOUR0 + 9), self.size)
        grid = canvas[:rows, :cols]
        return (np.clip(grid, COLOUR0, COLOUR0 + 9) - COLOUR0).tolist()

    def decode(self, tokens: np.ndarray) -> str:
        return json.dumps(self.decode_grid(tokens))

    def render(self, puzzle: np.ndarray, answer: np.ndarray) -> str:
        return "\n".join(" ".join(str(v) for v in row) for row in self.decode_grid(answer))

    # Nothing but the task's hidden output tells a right ARC grid from a wrong one.
    can_verify = False

    def verify(self, puzzles: np.ndarray, answers: np.ndarray) -> np.ndarray:
        raise CannotVerifyError("ARC answers cannot be verified without their solutions")

    def split_text(self, text: str) -> list[str]:
        """A task JSON's test inputs (`{"train": [...], "test": [{"input": grid}, ...]}`)."""
        try:
            doc = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise PuzzleError(f"not an ARC task JSON: {str(exc)[:200]}") from None
        tests = doc.get("test") if isinstance(doc, dict) else None
        if not isinstance(tests, list) or not all(isinstance(t, dict) and "input" in t for t in tests):
            raise PuzzleError('an ARC task JSON has a \'test\' list of {"input": grid} entries')
        return [json.dumps(t["input"]) for t in tests]

    def symmetries(self, count: int, seed: int = 0) -> list[Any]:
        raise PuzzleError("ARC has no symmetry group here: it asks the versions it was trained on (trm-edge solve-arc)")

    def sample_puzzles(self, count: int, seed: int = 0) -> np.ndarray | None:
        """None: an ARC puzzle is a task's test input, and no rule makes one (export --data gives them)."""
        return None
