"""Verified answers: the task rules that tell a solution without its label, and halting on them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trm_edge.contract.halting_policy import HaltPolicy, parse_policy
from trm_edge.errors import TrmEdgeError
from trm_edge.runtime.halting import simulate
from trm_edge.tasks import ArcCodec, CannotVerifyError, MazeCodec, SudokuCodec
from trm_edge.tasks.maze import GOAL, OPEN, PATH, START, WALL

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def maze_hard() -> tuple[np.ndarray, np.ndarray]:
    data = np.load(FIXTURES / "maze_hard_test.npz")
    return data["inputs"].astype(np.int32), data["labels"].astype(np.int32)


def test_maze_verifier_accepts_every_maze_hard_label(maze_hard: tuple[np.ndarray, np.ndarray]) -> None:
    mazes, labels = maze_hard
    assert len(mazes) == 1000
    assert MazeCodec(30).verify(mazes, labels).all()


def _corruptions(maze: np.ndarray, label: np.ndarray) -> dict[str, np.ndarray]:
    """One wrong answer of each kind for one 30x30 maze and its labelled shortest path."""
    n = 30
    grid, answer = maze.reshape(n, n), label.reshape(n, n)
    path = np.argwhere(answer == PATH)
    out: dict[str, np.ndarray] = {}
    dropped = answer.copy()
    dropped[tuple(path[len(path) // 2])] = OPEN
    out["a path cell dropped"] = dropped
    # A stray marked cell: an open cell that touches no path cell.
    free = np.argwhere(grid == OPEN)
    touching = np.zeros_like(grid, dtype=bool)
    for r, c in path:
        touching[max(r - 1, 0) : r + 2, max(c - 1, 0) : c + 2] = True
    stray = answer.copy()
    stray[tuple(next(p for p in free if not touching[tuple(p)]))] = PATH
    out["a stray path cell"] = stray
    # A detour: a path cell swapped for a bulge of three open cells beside it (longer, still connected).
    detour = None
    for r, c in path:
        for dr, dc in ((0, 1), (0, -1), (1, 0), (-1, 0)):
            r2, c2 = r + dr, c + dc
            if 0 <= r2 < n and 0 <= c2 < n and answer[r2, c2] == PATH:
                # bulge to the side of the segment (r,c)-(r2,c2)
                for sr, sc in ((dc, dr), (-dc, -dr)):
                    a, b = (r + sr, c + sc), (r2 + sr, c2 + sc)
                    if all(0 <= x < n for x in (*a, *b)) and grid[a] == OPEN and grid[b] == OPEN:
                        cand = answer.copy()
                        cand[a] = cand[b] = PATH
                        detour = cand
                        break
            if detour is not None:
                break
        if detour is not None:
            break
    assert detour is not None
    out["a detour"] = detour
    through_wall = answer.copy()
    wall = np.argwhere(grid == WALL)[0]
    through_wall[tuple(wall)] = PATH
    out["a path cell on a wall"] = through_wall
    for mark, name in ((START, "S"), (GOAL, "G")):
        over = answer.copy()
        over[over == mark] = PATH
        out[f"{name} overwritten"] = over
    out["no path"] = grid.copy()
    out["padding token"] = np.where(answer == OPEN, 0, answer)
    return {k: v.reshape(-1) for k, v in out.items()}


def test_maze_verifier_rejects_corrupted_answers(maze_hard: tuple[np.ndarray, np.ndarray]) -> None:
    mazes, labels = maze_hard
    codec = MazeCodec(30)
    for i in range(5):
        for what, answer in _corruptions(mazes[i], labels[i]).items():
            assert not codec.is_solution(mazes[i], answer), f"maze {i}: {what} was accepted"


def test_maze_verifier_accepts_any_shortest_path_not_only_the_label() -> None:
    codec = MazeCodec(4)
    tokens = codec.encode("S  #\n  ##\n  G#\n####")  # S to G: 4 steps, by three different paths
    for answer in ("S  #\no ##\nooG#\n####", "So #\n o##\n oG#\n####", "S  #\noo##\n oG#\n####"):
        assert codec.is_solution(tokens, _maze_tokens(answer)), answer
    for answer in ("So #\noo##\n oG#\n####",  # two paths at once
                   "S  #\no ##\no G#\n####"):  # stops short of G
        assert not codec.is_solution(tokens, _maze_tokens(answer)), answer


def _maze_tokens(text: str) -> np.ndarray:
    charset = "# SGo"
    return np.array([charset.index(ch) + 1 for ch in text.replace("\n", "")], dtype=np.int32)


def test_sudoku_verifier_is_exact() -> None:
    from trm_edge.shipped import shipped_heldout

    codec = SudokuCodec()
    held = np.load(shipped_heldout())
    puzzles, solutions = held["puzzles"][:200].astype(np.int32) + 1, held["solutions"][:200].astype(np.int32) + 1
    assert codec.verify(puzzles, solutions).all()
    assert not codec.verify(puzzles, puzzles).any()  # blanks left
    swapped = solutions.copy()
    swapped[:, [0, 1]] = swapped[:, [1, 0]]  # same digits, two cells exchanged in a row
    differs = solutions[:, 0] != solutions[:, 1]
    assert differs.any() and not codec.verify(puzzles, swapped)[differs].any()
    # A valid grid that changes a given is not the puzzle's solution: relabel two digits everywhere.
    relabelled = solutions.copy()
    relabelled[solutions == 2], relabelled[solutions == 3] = 3, 2
    assert not codec.verify(puzzles, relabelled).any()
    assert codec.verify(relabelled, relabelled).all()  # ...though it is a valid grid


def test_arc_cannot_verify() -> None:
    codec = ArcCodec(30)
    assert codec.can_verify is False
    tokens = codec.encode("[[1, 2], [3, 4]]")
    with pytest.raises(CannotVerifyError, match="cannot be verified"):
        codec.is_solution(tokens, tokens)


def test_verified_policy_names_and_fallback() -> None:
    assert parse_policy("verified").verified and parse_policy("verified").stable_steps is not None
    assert parse_policy("verified,max") == HaltPolicy(verified=True)
    assert parse_policy("verified,stable:3").name == "verified,stable:3"
    for name in ("verified,max", "verified,stable:2", "verified,threshold:0.9", "verified,threshold:0.9,stable:2",
                 "verified,max:8", "verified,stable:4,max:8", "stable:2,max:6"):
        assert parse_policy(name).name == name
    for bad in ("verified,fixed:3", "verified,max:0", "verified,sometimes", "verified,max:x"):
        with pytest.raises(TrmEdgeError, match="halting policy|needs N >= 1"):
            parse_policy(bad)


def test_simulated_verified_halting_stops_at_the_first_verified_step() -> None:
    steps, puzzles = 8, 3
    answers = np.zeros((steps, puzzles, 4), dtype=np.int32)
    answers[:, 0] = np.arange(steps)[:, None]  # always changing, verifies at step 3
    answers[:, 1] = np.arange(steps)[:, None]  # always changing, never verifies
    # puzzle 2 never changes and never verifies: the stable fallback stops it
    verified = np.zeros((steps, puzzles), dtype=bool)
    verified[2:, 0] = True
    scores = np.full((steps, puzzles), -5.0, dtype=np.float32)
    halted = simulate(parse_policy("verified,stable:2"), answers, scores, steps, verified)
    assert halted.tolist() == [3, steps, 3]
    assert simulate(parse_policy("verified,max"), answers, scores, steps, verified).tolist() == [3, steps, steps]
    assert simulate(parse_policy("verified,max:5"), answers, scores, steps, verified).tolist() == [3, 5, 5]
    with pytest.raises(TrmEdgeError, match="needs a task whose answers can be verified"):
        simulate(parse_policy("verified"), answers, scores, steps, None)
