"""Task codecs: round trips and a clear error for every class of malformed puzzle."""

from __future__ import annotations

import json

import numpy as np
import pytest

from trm_edge.tasks import ArcCodec, MazeCodec, PuzzleError, SudokuCodec, get_codec

from conftest import FIXTURES, TRAINED

SUDOKU = "4.....8.5.3..........7......2.....6.....8.4......1.......6.3.7.5..2.....1.4......"


def test_sudoku_round_trip_matches_official_tokens() -> None:
    codec = SudokuCodec()
    data = np.load(TRAINED / "test_300.npz")
    for digits in data["puzzles"][:20]:
        text = "".join(str(d) if d else "." for d in digits)
        tokens = codec.encode(text)
        np.testing.assert_array_equal(tokens, digits + 1)  # official: blank 1, digit d -> d + 1
        assert codec.decode(tokens) == text
    spaced = "\n".join(" ".join(SUDOKU[r * 9 : r * 9 + 9].replace(".", "0")) for r in range(9))
    np.testing.assert_array_equal(codec.encode(spaced), codec.encode(SUDOKU))
    solution = data["solutions"][0] + 1
    assert codec.is_solution(data["puzzles"][0] + 1, solution)
    broken = solution.copy()
    broken[0], broken[1] = broken[1], broken[0]
    assert not codec.is_solution(data["puzzles"][0] + 1, broken)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (SUDOKU[:80], "has 80"),
        (SUDOKU[:-1] + "x", "cell 81 (row 9, column 9) is 'x'"),
        ("11" + "." * 79, "1 appears twice in row 1"),
        ("1" + "." * 8 + "1" + "." * 71, "1 appears twice in column 1"),
        ("1" + "." * 9 + "1" + "." * 70, "1 appears twice in box 1"),
    ],
)
def test_sudoku_errors(text: str, message: str) -> None:
    with pytest.raises(PuzzleError, match=message.replace("(", r"\(").replace(")", r"\)")):
        SudokuCodec().encode(text)


def maze_rows() -> list[str]:
    import csv

    with open(FIXTURES / "maze_hard_test_head.csv") as fh:
        row = next(csv.DictReader(fh))
    return [row["question"][i * 30 : (i + 1) * 30] for i in range(30)], row["answer"]


def test_maze_round_trip_matches_official_tokens() -> None:
    codec = MazeCodec()
    rows, answer = maze_rows()
    tokens = codec.encode("\n".join(rows))
    official = np.load(FIXTURES / "maze_hard_test.npz")["inputs"][0]
    np.testing.assert_array_equal(tokens, official)
    np.testing.assert_array_equal(codec.encode("".join(rows)), tokens)
    labels = np.load(FIXTURES / "maze_hard_test.npz")["labels"][0]
    assert codec.decode(labels).replace("\n", "") == answer


def test_maze_errors() -> None:
    codec = MazeCodec()
    rows, _ = maze_rows()
    with pytest.raises(PuzzleError, match="has 30 lines, this one has 29"):
        codec.encode("\n".join(rows[:29]))
    with pytest.raises(PuzzleError, match="line 3 has 29 characters"):
        codec.encode("\n".join([*rows[:2], rows[2][:29], *rows[3:]]))
    with pytest.raises(PuzzleError, match="character 'x'"):
        codec.encode("\n".join(["x" + rows[0][1:], *rows[1:]]))
    with pytest.raises(PuzzleError, match="exactly one S"):
        codec.encode("\n".join(rows).replace("S", " "))
    with pytest.raises(PuzzleError, match="marks a solution path"):
        codec.encode("\n".join(["o" + rows[0][1:], *rows[1:]]))


def test_arc_round_trip_and_official_layout() -> None:
    codec = ArcCodec()
    grid = [[0, 7, 7], [7, 7, 7]]
    tokens = codec.encode(json.dumps(grid)).reshape(30, 30)
    assert tokens[0, :4].tolist() == [2, 9, 9, 1]  # colours + 2, then the end-of-grid column
    assert tokens[2, :4].tolist() == [1, 1, 1, 0]  # the end-of-grid row below, then padding
    assert codec.decode_grid(tokens.reshape(-1)) == grid
    task = json.loads((FIXTURES / "arc" / "arc-agi_training_challenges.json").read_text())["007bbfb7"]
    for pair in task["train"]:
        assert codec.decode_grid(codec.encode_grid(pair["output"])) == pair["output"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[1, 2], [3]]", "same, non-zero length"),
        ("[[10]]", "colours are integers 0-9"),
        (json.dumps([[0] * 31]), "at most 30x30"),
        ("not json", "JSON like"),
        ("[]", "non-empty list"),
    ],
)
def test_arc_errors(text: str, message: str) -> None:
    with pytest.raises(PuzzleError, match=message):
        ArcCodec().encode(text)


def test_unknown_task_has_no_codec() -> None:
    with pytest.raises(Exception, match="no puzzle codec"):
        get_codec("chess")


def test_maze_file_keeps_rows_without_walls(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Mazes in a text file are separated by empty lines; a row of spaces (no walls) is a row."""
    from trm_edge.runtime.puzzle_files import read_puzzles

    first = ["S   ", "### ", "    ", "G## "]  # its third row has no walls
    second = ["S#G ", "    ", " ## ", "    "]
    (tmp_path / "mazes.txt").write_text("\n".join(first) + "\n\n" + "\n".join(second) + "\n")
    read = read_puzzles(tmp_path / "mazes.txt", MazeCodec(4))
    assert read == ["\n".join(first), "\n".join(second)]
    codec = MazeCodec(4)
    assert [codec.decode(codec.encode(text)) for text in read] == read


def test_rule_breaks_counts_the_cells_that_break_a_rule() -> None:
    from trm_edge.tasks.sudoku import rule_breaks

    data = np.load(TRAINED / "test_300.npz")
    puzzles, solutions = data["puzzles"][:4] + 1, data["solutions"][:4] + 1
    assert rule_breaks(puzzles, solutions).tolist() == [0, 0, 0, 0]
    broken = solutions.copy()
    free = np.flatnonzero(puzzles[0] == 1)[0]  # a blank cell (token 1): changing it breaks no given
    broken[0, free] = solutions[0, free] % 9 + 2  # another digit: repeats in its row, column and box
    broken[1, np.flatnonzero(puzzles[1] > 1)[0]] = 1  # a given left blank
    counts = rule_breaks(puzzles, broken)
    assert counts[0] >= 2 and counts[1] == 1 and counts[2:].tolist() == [0, 0]
    codec = SudokuCodec()
    assert [codec.verify(p, a)[0] for p, a in zip(puzzles, broken, strict=True)] == [False, False, True, True]


def test_sampled_sudokus_are_puzzles_of_a_valid_grid() -> None:
    """What a plain export validates on: parseable Sudokus with 22-40 givens drawn from a seed, each
    the givens of a valid full grid (with every cell given it verifies as its own answer)."""
    codec = SudokuCodec()
    puzzles = codec.sample_puzzles(64, seed=3)
    assert puzzles.shape == (64, 81) and puzzles.dtype == np.int32
    np.testing.assert_array_equal(puzzles, codec.sample_puzzles(64, seed=3))
    assert not np.array_equal(puzzles, codec.sample_puzzles(64, seed=4))
    givens = (puzzles > 1).sum(axis=1)
    assert givens.min() >= 22 and givens.max() <= 40 and len(set(givens)) > 5
    for p in puzzles:
        np.testing.assert_array_equal(codec.encode(codec.decode(p)), p)  # no clashing givens
    full = codec.sample_puzzles(64, seed=3, givens=(81, 81))
    assert codec.verify(full, full).all()


@pytest.mark.parametrize("size", [10, 30])
def test_sampled_mazes_have_one_start_one_goal_and_a_long_path(size: int) -> None:
    from trm_edge.tasks.maze import _shortest_distance

    codec = MazeCodec(size)
    mazes = codec.sample_puzzles(16, seed=0)
    assert mazes.shape == (16, size * size)
    np.testing.assert_array_equal(mazes, codec.sample_puzzles(16, seed=0))
    for m in mazes:
        np.testing.assert_array_equal(codec.encode(codec.decode(m)), m)
    assert (_shortest_distance(mazes.reshape(-1, size, size)) >= int(1.6 * size)).all()
    assert ArcCodec().sample_puzzles(4) is None  # ARC has no rule that makes a puzzle
