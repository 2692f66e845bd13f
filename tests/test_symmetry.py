"""Each task's symmetry group: versions of real puzzles round-trip, and keep solutions solutions."""

from __future__ import annotations

import numpy as np
import pytest

from trm_edge.errors import TrmEdgeError
from trm_edge.tasks import ArcCodec, MazeCodec, SudokuCodec
from trm_edge.tasks.symmetry import SquareSymmetry, SudokuTransform

from conftest import FIXTURES, TRAINED


def test_sudoku_versions_round_trip_and_keep_solutions_valid() -> None:
    data = np.load(TRAINED / "test_300.npz")
    puzzles, solutions = data["puzzles"][:60] + 1, data["solutions"][:60] + 1  # codec tokens
    codec = SudokuCodec()
    versions = SudokuCodec().symmetries(8, seed=3)
    assert isinstance(versions[0], SudokuTransform) and (versions[0].forward(puzzles) == puzzles).all()
    for version in versions:
        moved, moved_solutions = version.forward(puzzles), version.forward(solutions)
        np.testing.assert_array_equal(version.inverse(moved), puzzles)
        np.testing.assert_array_equal(version.inverse(moved_solutions), solutions)
        assert codec.verify(moved, moved_solutions).all()  # a solution in every frame
        wrong = moved_solutions.copy()
        wrong[:, [0, 1]] = wrong[:, [1, 0]]  # two cells swapped: no longer a solution
        assert not codec.verify(moved, wrong).any()
    assert len({v.forward(puzzles[:1]).tobytes() for v in versions}) == 8


def test_maze_group_round_trips_on_maze_hard_test_mazes() -> None:
    data = np.load(FIXTURES / "maze_hard_test.npz")
    mazes, paths = data["inputs"][:40].astype(np.int64), data["labels"][:40].astype(np.int64)
    codec = MazeCodec()
    versions = MazeCodec().symmetries(8, seed=0)
    assert sorted(v.tid for v in versions) == list(range(8)) and versions[0].tid == 0  # type: ignore[attr-defined]
    for version in versions:
        moved, moved_paths = version.forward(mazes), version.forward(paths)
        np.testing.assert_array_equal(version.inverse(moved), mazes)
        np.testing.assert_array_equal(version.inverse(moved_paths), paths)
        assert codec.verify(moved, moved_paths).all()  # a shortest path in every frame
    assert (SquareSymmetry(1, 30).forward(mazes) != mazes).any()


def test_versions_come_from_a_seed_and_bad_requests_are_explained() -> None:
    a, b = SudokuCodec().symmetries(4, seed=7), SudokuCodec().symmetries(4, seed=7)
    grid = np.arange(81) % 10 + 1
    assert all((x.forward(grid) == y.forward(grid)).all() for x, y in zip(a, b, strict=True))
    assert len(MazeCodec().symmetries(20)) == 8  # the square has 8 symmetries
    with pytest.raises(TrmEdgeError, match="versions must be at least 1"):
        SudokuCodec().symmetries(0)
    with pytest.raises(TrmEdgeError, match="ARC has no symmetry group here"):
        ArcCodec().symmetries(2)
