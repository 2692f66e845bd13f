"""Mazes as text grids in the official charset: '#' wall, ' ' open, 'S' start, 'G' goal, 'o' path.

A puzzle is `size` lines of `size` characters (or one string of size*size); the answer marks the
shortest path with 'o'. Tokens are the official ones: 0 padding, then 1-5 for '# SGo'.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from trm_edge.errors import TrmEdgeError
from trm_edge.tasks.base import BaseCodec, PuzzleError, check_pair

CHARSET = "# SGo"
WALL, OPEN, START, GOAL, PATH = 1, 2, 3, 4, 5  # tokens
MAZE_COLOURS = ("#ffffff", "#202020", "#f4f4f4", "#2ca02c", "#d62728", "#1f9fd0")  # pad, wall, open, S, G, path


class MazeCodec(BaseCodec):
    name = "maze"
    vocab_size = 6
    official_shape = (900, 6)  # Maze-Hard, 30x30
    square = True  # a size x size canvas: `size` is its option
    legend = ("#: wall, .: open; S start, G goal; cyan o: the model's path; verified: a path from S to G through open "
              "cells that is as short as a breadth-first search finds (checked without the solution)")

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
        # Open cells as a dim '.', so a row's trailing open cells stay visible in a terminal.
        marks = {"o": "[bold cyan]o[/]", "#": "[dim]#[/]", "S": "[bold green]S[/]", "G": "[bold red]G[/]",
                 " ": "[dim].[/]"}
        return "".join(marks.get(ch, ch) for ch in text)

    can_verify = True

    def verify(self, puzzles: np.ndarray, answers: np.ndarray) -> np.ndarray:
        """Answers that keep every wall, S and G, mark only open cells, and whose marked cells are
        one shortest S-G path (any shortest path, not only the label's).

        On a shortest path no two cells that are not consecutive touch (that would be a shortcut),
        so S and G have exactly one marked neighbour and each marked cell two. Such a set is one
        S-G path plus, possibly, separate cycles; with exactly (shortest distance - 1) marked cells
        there is no room for a cycle, so it is a shortest path. The distance (a breadth-first
        search) is computed only for answers that pass the cheap checks."""
        puzzles, answers = check_pair(puzzles, answers, self.seq_len)
        n = self.size
        maze = puzzles.reshape(-1, n, n)
        answer = answers.reshape(-1, n, n)
        fixed = (maze == WALL) | (maze == START) | (maze == GOAL)
        keeps = np.where(fixed, answer == maze, (answer == OPEN) | (answer == PATH)).all(axis=(1, 2))
        well_formed = keeps & ((maze == START).sum(axis=(1, 2)) == 1) & ((maze == GOAL).sum(axis=(1, 2)) == 1)
        on_path = (answer == PATH) | (answer == START) | (answer == GOAL)
        degree = _neighbours(on_path)
        ends = (answer == START) | (answer == GOAL)
        shape_ok = np.where(ends, degree == 1, np.where(answer == PATH, degree == 2, True)).all(axis=(1, 2))
        ok = well_formed & shape_ok
        if ok.any():
            distance = _shortest_distance(maze[ok])
            ok[np.flatnonzero(ok)] = (answer[ok] == PATH).sum(axis=(1, 2)) + 1 == distance
        return ok

    def split_text(self, text: str) -> list[str]:
        """Mazes separated by empty lines (a line of spaces is a maze row with no walls, not a separator)."""
        blocks: list[str] = []
        current: list[str] = []
        for line in text.split("\n"):
            if line.rstrip("\r") == "":
                if current:
                    blocks.append("\n".join(current))
                current = []
            else:
                current.append(line)
        if current:
            blocks.append("\n".join(current))
        return blocks

    def symmetries(self, count: int, seed: int = 0) -> list[Any]:
        """The square's 8 symmetries (at most 8 distinct versions), the identity first."""
        from trm_edge.tasks.symmetry import SquareSymmetry, check_count

        others = [int(t) for t in np.random.default_rng(seed).permutation(np.arange(1, 8))]
        return [SquareSymmetry(t, self.size) for t in [0, *others][: check_count(count)]]

    def picture(self, path: Path, answers: list[np.ndarray], titles: list[str]) -> Path:
        """Solved mazes side by side: walls dark, S green, G red, the model's path blue."""
        from matplotlib.colors import ListedColormap

        from trm_edge.pictures import pyplot, save

        plt = pyplot()
        fig, axes = plt.subplots(1, len(answers), figsize=(3.2 * len(answers), 3.5), squeeze=False)
        for ax, answer, title in zip(axes[0], answers, titles, strict=True):
            ax.imshow(np.asarray(answer).reshape(self.size, self.size), cmap=ListedColormap(MAZE_COLOURS), vmin=0,
                      vmax=len(MAZE_COLOURS) - 1)
            ax.set_title(title, fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
        return save(plt, fig, path, "solved mazes (S green, G red, the model's path blue)")

    def sample_puzzles(self, count: int, seed: int = 0) -> np.ndarray:
        """Mazes in the training generator's style (train/maze_generator.py): a random wall field
        (28-40% walls), S at a random open cell, G the reachable cell farthest from it, kept when
        the S-G distance is at least 1.6 x the side. Unlike the generator, other shortest paths are
        not walled off: enough to validate an export on, not a data set."""
        rng = np.random.default_rng(seed)
        n, tries = self.size, 0
        found: list[np.ndarray] = []
        while len(found) < count:
            tries += 1
            if tries > 200:
                raise TrmEdgeError(f"no {n}x{n} mazes with a long enough path found: give --data")
            batch = 4 * count
            walls = rng.random((batch, n * n)) < rng.uniform(0.28, 0.40, (batch, 1))
            start = np.array([rng.choice(np.flatnonzero(~w)) if (~w).any() else 0 for w in walls])
            walls[np.arange(batch), start] = False
            distance = _distances_from(~walls.reshape(batch, n, n), start).reshape(batch, -1)
            goal = distance.argmax(axis=1)
            far = distance[np.arange(batch), goal]
            for i in np.flatnonzero(far >= max(2, int(1.6 * n)))[: count - len(found)]:
                maze = np.where(walls[i], WALL, OPEN).astype(np.int32)
                maze[start[i]], maze[goal[i]] = START, GOAL
                found.append(maze)
        return np.stack(found)


def _neighbours(cells: np.ndarray) -> np.ndarray:
    """(N, n, n) bool -> how many of each cell's 4 neighbours are set."""
    padded = np.pad(cells, ((0, 0), (1, 1), (1, 1))).astype(np.int8)
    return padded[:, :-2, 1:-1] + padded[:, 2:, 1:-1] + padded[:, 1:-1, :-2] + padded[:, 1:-1, 2:]


def _grown(cells: np.ndarray) -> np.ndarray:
    """(N, n, n) bool -> the cells with a set 4-neighbour (one wavefront step)."""
    grown = np.zeros_like(cells)
    grown[:, 1:] |= cells[:, :-1]
    grown[:, :-1] |= cells[:, 1:]
    grown[:, :, 1:] |= cells[:, :, :-1]
    grown[:, :, :-1] |= cells[:, :, 1:]
    return grown


def _distances_from(passable: np.ndarray, start: np.ndarray) -> np.ndarray:
    """(N, n, n) steps from each maze's `start` cell (flat index) to every cell through passable
    cells; -1 where unreachable. A wavefront per step, for the whole batch."""
    count, n, _ = passable.shape
    distance = np.full(passable.shape, -1, dtype=np.int64)
    frontier = np.zeros_like(passable)
    frontier.reshape(count, -1)[np.arange(count), start] = True
    distance[frontier] = 0
    reached = frontier.copy()
    for step in range(1, n * n):
        frontier = _grown(frontier) & passable & ~reached
        if not frontier.any():
            break
        reached |= frontier
        distance[frontier] = step
    return distance


def _shortest_distance(maze: np.ndarray) -> np.ndarray:
    """Steps from S to G through open cells for each (n, n) maze; -1 where G is unreachable.
    One breadth-first search for the whole batch, a wavefront per step."""
    passable = maze != WALL
    reached = maze == START
    goal = maze == GOAL
    distance = np.full(len(maze), -1, dtype=np.int64)
    frontier = reached.copy()
    for step in range(1, maze.shape[1] * maze.shape[2]):
        frontier = _grown(frontier) & passable & ~reached
        reached |= frontier
        arrived = (distance < 0) & (frontier & goal).any(axis=(1, 2))
        distance[arrived] = step
        if not frontier.any() or (distance >= 0).all():
            break
    return distance
