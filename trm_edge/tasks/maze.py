"""Mazes as text grids in the official charset: '#' wall, ' ' open, 'S' start, 'G' goal, 'o' path.

A puzzle is `size` lines of `size` characters (or one string of size*size); the answer marks the
shortest path with 'o'. Tokens are the official ones: 0 padding, then 1-5 for '# SGo'.
"""

from __future__ import annotations

import numpy as np

from trm_edge.tasks.base import PuzzleError

CHARSET = "# SGo"


class MazeCodec:
    name = "maze"
    vocab_size = 6

    def __init__(self, size: int = 30) -> None:
        self.size = size
        self.seq_len = size * size

    def encode(self, text: str) -> np.ndarray:
        n = self.size
        rows = [line for line in text.split("\n") if line.strip("\r") != ""]
        rows = [line.rstrip("\r") for line in rows]
        if len(rows) == 1 and len(rows[0]) == n * n:
            flat = rows[0]
        else:
            if len(rows) != n:
                raise PuzzleError(f"a {n}x{n} maze has {n} lines, this one has {len(rows)}")
            for r, line in enumerate(rows):
                if len(line) != n:
                    raise PuzzleError(f"maze line {r + 1} has {len(line)} characters, not {n}")
            flat = "".join(rows)
        for i, ch in enumerate(flat):
            if ch == "o":
                raise PuzzleError(
                    f"'o' at row {i // n + 1}, column {i % n + 1} marks a solution path; "
                    "a puzzle has only '#', ' ', 'S' and 'G'"
                )
            if ch not in CHARSET:
                raise PuzzleError(f"character {ch!r} at row {i // n + 1}, column {i % n + 1} is not one of '# SG'")
        for mark, what in (("S", "start"), ("G", "goal")):
            if flat.count(mark) != 1:
                raise PuzzleError(f"a maze needs exactly one {mark} ({what}), this one has {flat.count(mark)}")
        return np.array([CHARSET.index(ch) + 1 for ch in flat], dtype=np.int32)

    def decode(self, tokens: np.ndarray) -> str:
        chars = [CHARSET[t - 1] if 1 <= t <= len(CHARSET) else "?" for t in np.asarray(tokens).reshape(-1)]
        return "\n".join("".join(chars[r * self.size : (r + 1) * self.size]) for r in range(self.size))

    def render(self, puzzle: np.ndarray, answer: np.ndarray) -> str:
        text = self.decode(answer)
        return text.replace("o", "[bold cyan]o[/]").replace("#", "[dim]#[/]")
