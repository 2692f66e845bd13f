"""Offline N x N mazes in Maze-Hard's style: random walls, S and G far apart, one shortest path.

A maze is a random wall field (density drawn per attempt around Maze-Hard's ~35%). S is a random
open cell and G the reachable cell farthest from it; attempts repeat until the S-G distance
reaches `min_path`. The label marks a shortest path with 'o' (S and G excluded, as in Maze-Hard).
So that the label is the only right answer, every other cell that lies on some shortest path is
turned into a wall: the marked path is then the unique shortest path.

Maze i depends only on (seed, i). Compiled with numba: attempts run BFS over the grid many times.
"""

from __future__ import annotations

from collections.abc import Callable

import numba
import numpy as np

from trm_edge.errors import TrmEdgeError

WALL, OPEN, START, GOAL, PATH = 1, 2, 3, 4, 5  # the Maze codec's tokens for '#', ' ', 'S', 'G', 'o'
MAX_ATTEMPTS = 20000


@numba.njit(cache=True)
def _bfs(open_cells, side, source, dist, queue):  # type: ignore[no-untyped-def]
    dist[:] = -1
    dist[source] = 0
    head, tail = 0, 1
    queue[0] = source
    while head < tail:
        cell = queue[head]
        head += 1
        r, c = cell // side, cell % side
        for k in range(4):
            nr = r + (k == 0) - (k == 1)
            nc = c + (k == 2) - (k == 3)
            if 0 <= nr < side and 0 <= nc < side:
                nxt = nr * side + nc
                if open_cells[nxt] and dist[nxt] < 0:
                    dist[nxt] = dist[cell] + 1
                    queue[tail] = nxt
                    tail += 1


@numba.njit(cache=True)
def _one_maze(side, min_path, maze, label):  # type: ignore[no-untyped-def]
    n = side * side
    dist_s = np.empty(n, np.int64)
    dist_g = np.empty(n, np.int64)
    queue = np.empty(n, np.int64)
    for _attempt in range(MAX_ATTEMPTS):
        density = 0.28 + 0.12 * np.random.random()
        open_cells = np.random.random(n) >= density
        candidates = np.nonzero(open_cells)[0]
        if len(candidates) < 2:
            continue
        s = candidates[np.random.randint(len(candidates))]
        _bfs(open_cells, side, s, dist_s, queue)
        far = dist_s.max()
        if far < min_path:
            continue
        ends = np.nonzero(dist_s == far)[0]
        g = ends[np.random.randint(len(ends))]
        _bfs(open_cells, side, g, dist_g, queue)
        # Walk back from G to S through random predecessors: one shortest path.
        on_path = np.zeros(n, np.bool_)
        cell = g
        while cell != s:
            r, c = cell // side, cell % side
            options = np.empty(4, np.int64)
            m = 0
            for k in range(4):
                nr = r + (k == 0) - (k == 1)
                nc = c + (k == 2) - (k == 3)
                if 0 <= nr < side and 0 <= nc < side:
                    nxt = nr * side + nc
                    if open_cells[nxt] and dist_s[nxt] == dist_s[cell] - 1:
                        options[m] = nxt
                        m += 1
            cell = options[np.random.randint(m)]
            on_path[cell] = True
        on_path[s] = False
        for i in range(n):
            if open_cells[i] and dist_s[i] >= 0 and dist_g[i] >= 0 and dist_s[i] + dist_g[i] == far \
                    and not on_path[i] and i != s and i != g:
                open_cells[i] = False  # another shortest path ran through here: wall it off
        for i in range(n):
            maze[i] = OPEN if open_cells[i] else WALL
            label[i] = PATH if on_path[i] else maze[i]
        maze[s] = START
        maze[g] = GOAL
        label[s] = START
        label[g] = GOAL
        return far
    return -1


@numba.njit(cache=True)
def _generate(seed, first, count, side, min_path, mazes, labels, lengths):  # type: ignore[no-untyped-def]
    for k in range(count):
        np.random.seed((seed * 1000003 + first + k) % 4294967296)
        lengths[k] = _one_maze(side, min_path, mazes[k], labels[k])


def generate_mazes(
    count: int,
    size: int = 30,
    min_path: int = 90,
    seed: int = 0,
    first: int = 0,
    progress: Callable[[int], None] | None = None,
    chunk: int = 64,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mazes, labels, path lengths): (count, size*size) uint8 tokens and (count,) int64 S-G distances."""
    if size < 4:
        raise TrmEdgeError(f"mazes must be at least 4x4, got {size}")
    if not 1 <= min_path <= size * size // 3:
        raise TrmEdgeError(f"min_path {min_path} must lie in [1, {size * size // 3}] for {size}x{size} mazes")
    mazes = np.zeros((count, size * size), np.uint8)
    labels = np.zeros_like(mazes)
    lengths = np.zeros(count, np.int64)
    for start in range(0, count, chunk):
        n = min(chunk, count - start)
        _generate(seed, first + start, n, size, min_path, mazes[start : start + n], labels[start : start + n],
                  lengths[start : start + n])
        if (lengths[start : start + n] < 0).any():
            raise TrmEdgeError(f"no {size}x{size} maze with a path of {min_path}+ found in {MAX_ATTEMPTS} attempts: "
                             "lower --min-path")
        if progress is not None:
            progress(n)
    return mazes, labels, lengths


def shortest_path_length(maze: np.ndarray, size: int) -> int:
    """BFS distance from S to G in a token grid (-1 when G is unreachable)."""
    flat = np.asarray(maze).reshape(-1)
    open_cells = flat != WALL
    dist = np.empty(len(flat), np.int64)
    queue = np.empty(len(flat), np.int64)
    _bfs(open_cells, size, int(np.argmax(flat == START)), dist, queue)
    return int(dist[int(np.argmax(flat == GOAL))])
