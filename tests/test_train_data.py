"""Training data: generators, readers against the official arrays, augmentations and their inverses,
builders that write what the readers read, and ARC voting."""

from __future__ import annotations

import json

import numpy as np
import pytest

from trm_edge.errors import TrmEdgeError
from trm_edge.tasks.arc import ArcCodec
from trm_edge.tasks.arc_versions import DIHEDRAL_INVERSE, ArcVersion, dihedral, dihedral_inverse
from trm_edge.tasks.arc_vote import crop
from trm_edge.tasks.symmetry import SudokuTransform
from trm_edge.train.arc_eval import arc_pass_at_k, split_version
from trm_edge.train.build_arc import build_arc
from trm_edge.train.build_maze import augment_mazes
from trm_edge.train.build_sudoku import build_generated_sudoku, build_sudoku_csv
from trm_edge.train.dataset import load_info, load_split
from trm_edge.train.maze_generator import PATH, generate_mazes, shortest_path_length
from trm_edge.train.sources import read_arc_combined, read_maze_csv, read_sudoku_csv
from trm_edge.train.sudoku_generator import count_solutions, generate_sudokus

from conftest import FIXTURES, run_cli, run_cli_in_process

ARC = FIXTURES / "arc"
MAZE_CSV = FIXTURES / "maze_hard_test_head.csv"  # the first 64 Maze-Hard test mazes
SUDOKU_CSV = FIXTURES / "sudoku_extreme_train_1k.csv"


def official_mazes(n: int) -> tuple[np.ndarray, np.ndarray]:
    arrays = np.load(FIXTURES / "maze_hard_test.npz")
    return arrays["inputs"][:n], arrays["labels"][:n]


def valid_sudoku(grid: np.ndarray) -> bool:
    g = np.asarray(grid).reshape(9, 9)
    boxes = g.reshape(3, 3, 3, 3).transpose(0, 2, 1, 3).reshape(9, 9)
    return all(sorted(unit) == list(range(1, 10)) for part in (g, g.T, boxes) for unit in part)


# --- generators ---------------------------------------------------------------------------------


def test_generated_sudokus_are_unique_valid_and_in_range() -> None:
    puzzles, solutions, _guesses = generate_sudokus(200, seed=3, givens=(30, 40))
    givens = (puzzles > 0).sum(1)
    assert givens.min() >= 30 and givens.max() <= 40
    assert len({p.tobytes() for p in puzzles}) == 200
    for p, s in zip(puzzles[:50], solutions[:50], strict=True):
        assert valid_sudoku(s)
        assert ((p == 0) | (p == s)).all()
        assert count_solutions(p)[0] == 1
    # Puzzle i depends on (seed, i) only: a later slice regenerates the same puzzles.
    again, _, _ = generate_sudokus(5, seed=3, givens=(30, 40), first=10)
    np.testing.assert_array_equal(again, puzzles[10:15])


def test_sudoku_difficulty_is_controlled_by_guesses() -> None:
    easy, _, easy_guesses = generate_sudokus(50, seed=1, givens=(24, 30), guesses=(0, 0))
    _hard, _, hard_guesses = generate_sudokus(20, seed=1, givens=(22, 26), guesses=(5, 1000))
    assert (easy_guesses == 0).all() and (hard_guesses >= 5).all()
    assert all(count_solutions(p)[1] == 0 for p in easy[:10])


def test_impossible_sudoku_range_is_a_clear_error() -> None:
    with pytest.raises(TrmEdgeError, match="widen the ranges"):
        generate_sudokus(1, givens=(17, 17))
    proc = run_cli("data", "sudoku-generate", "-o", "/tmp/never", "--givens", "forty", check=False)
    assert proc.returncode == 2 and "--givens must look like 30-40" in proc.stderr


def test_generated_mazes_have_one_marked_shortest_path() -> None:
    mazes, labels, lengths = generate_mazes(20, size=16, min_path=30, seed=2)
    assert (lengths >= 30).all()
    for maze, label, length in zip(mazes, labels, lengths, strict=True):
        assert shortest_path_length(maze, 16) == length
        path = label == PATH
        assert path.sum() == length - 1
        assert (maze[path] == 2).all() and (label[~path] == maze[~path]).all()
        # The marked path is the only shortest one: walling off any path cell lengthens or cuts it.
        cell = int(np.flatnonzero(path)[len(np.flatnonzero(path)) // 2])
        blocked = maze.copy()
        blocked[cell] = 1
        detour = shortest_path_length(blocked, 16)
        assert detour == -1 or detour > length  # cut off, or only longer paths remain
    again, _, _ = generate_mazes(3, size=16, min_path=30, seed=2, first=4)
    np.testing.assert_array_equal(again, mazes[4:7])


# --- augmentations ------------------------------------------------------------------------------


def test_sudoku_shuffles_keep_puzzles_valid_and_invert() -> None:
    puzzles, solutions, _ = generate_sudokus(20, seed=5)
    rng = np.random.default_rng(0)
    for p, s in zip(puzzles, solutions, strict=True):
        t = SudokuTransform.random(rng)
        tp, ts = t.apply(p), t.apply(s)
        assert valid_sudoku(ts)
        assert ((tp == 0) | (tp == ts)).all() and (tp > 0).sum() == (p > 0).sum()
        assert count_solutions(tp)[0] == 1
        np.testing.assert_array_equal(t.invert(tp), p)
        np.testing.assert_array_equal(t.invert(ts), s)


def test_dihedral_transforms_and_colour_permutations_invert() -> None:
    grid = np.arange(12).reshape(3, 4) % 10
    seen = set()
    for k in range(8):
        moved = dihedral(grid, k)
        np.testing.assert_array_equal(dihedral_inverse(moved, k), grid)
        np.testing.assert_array_equal(dihedral(moved, DIHEDRAL_INVERSE[k]), grid)
        seen.add(moved.tobytes() + bytes(moved.shape))
    assert len(seen) == 8  # eight distinct symmetries
    version = ArcVersion("t", 3, (0, 5, 1, 2, 3, 4, 9, 8, 7, 6))
    np.testing.assert_array_equal(version.inverse(version.forward(grid)), grid)


def test_maze_symmetries_keep_the_path_shortest() -> None:
    mazes, labels, lengths = generate_mazes(2, size=12, min_path=15, seed=0)
    inputs, outputs = augment_mazes(mazes, labels, 12)
    assert len(inputs) == 16
    for i in range(16):
        assert shortest_path_length(inputs[i], 12) == lengths[i % 2]
        assert (outputs[i] == PATH).sum() == lengths[i % 2] - 1


# --- readers against the official preprocessed arrays -------------------------------------------


def test_maze_csv_reader_matches_the_official_arrays() -> None:
    inputs, labels = read_maze_csv(MAZE_CSV)
    official_inputs, official_labels = official_mazes(64)
    np.testing.assert_array_equal(inputs, official_inputs)
    np.testing.assert_array_equal(labels, official_labels)


def test_sudoku_csv_reader_matches_the_official_arrays() -> None:
    puzzles, solutions, _ = read_sudoku_csv(SUDOKU_CSV)
    official = np.load(FIXTURES / "sudoku_extreme_train_1k.official.npz")
    np.testing.assert_array_equal(puzzles + 1, official["inputs"])
    np.testing.assert_array_equal(solutions + 1, official["labels"])


def test_readers_reject_malformed_rows(tmp_path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.csv"
    bad.write_text("source,q,a,rating\nx," + "1" * 80 + "," + "1" * 81 + ",0\n")
    with pytest.raises(TrmEdgeError, match="line 2"):
        read_sudoku_csv(bad)
    bad.write_text("source,question,answer,rating\nx," + "X" * 16 + "," + "#" * 16 + ",0\n")
    with pytest.raises(TrmEdgeError, match="only the characters"):
        read_maze_csv(bad)
    with pytest.raises(TrmEdgeError, match="no ARC subset 'nope'"):
        read_arc_combined(ARC, "nope")


# --- builders write what the readers and the trainer read -----------------------------------------


def test_generated_sudoku_dataset_round_trip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = build_generated_sudoku(tmp_path / "d", train=300, test=50, givens=(30, 40), seed=4, augment=1)
    info = load_info(path)
    assert (info.task, info.seq_len, info.vocab_size, info.splits) == ("sudoku", 81, 11, {"train": 600, "test": 50})
    train, test = load_split(path, "train"), load_split(path, "test")
    puzzles, solutions, _ = generate_sudokus(300, seed=4, givens=(30, 40))
    np.testing.assert_array_equal(train.inputs[:300], puzzles + 1)
    np.testing.assert_array_equal(train.labels[:300], solutions + 1)
    assert all(valid_sudoku(s - 1) for s in train.labels[300:320])
    assert not {r.tobytes() for r in test.inputs} & {r.tobytes() for r in train.inputs}
    with pytest.raises(TrmEdgeError, match="no split 'valid'"):
        load_split(path, "valid")


def test_sudoku_and_maze_csv_builders(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = build_sudoku_csv(tmp_path / "s", SUDOKU_CSV, subsample=100, augment=2, seed=0)
    assert load_info(path).splits == {"train": 300}
    split = load_split(path, "train")
    assert all(valid_sudoku(s - 1) for s in split.labels[::25])
    proc = run_cli_in_process("data", "maze-csv", "-o", str(tmp_path / "m"), "--train-csv", str(MAZE_CSV), check=True)
    assert "maze, train 64" in proc.stdout
    maze = load_split(tmp_path / "m", "train")
    np.testing.assert_array_equal(maze.inputs, official_mazes(64)[0])


def test_data_info_and_missing_dataset_errors(tmp_path) -> None:  # type: ignore[no-untyped-def]
    run_cli_in_process("data", "sudoku-generate", "-o", str(tmp_path / "d"), "--train", "64", "--test", "8", "--seed",
                       "1", check=True)
    info = json.loads(run_cli_in_process("data", "info", str(tmp_path / "d"), check=True).stdout)
    assert info["splits"] == {"train": 64, "test": 8} and info["built_with"]["seed"] == 1
    proc = run_cli_in_process("data", "info", str(tmp_path / "nothing"))
    assert proc.returncode == 2 and "not a trm-edge dataset" in proc.stderr


# --- ARC ----------------------------------------------------------------------------------------


def test_arc_builder_and_pass_at_k(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = build_arc(tmp_path / "arc", ARC, ["training", "evaluation"], "evaluation", augment=6, seed=0, max_tasks=4)
    info = load_info(path)
    test = load_split(path, "test")
    tasks = {t.name: t for t in read_arc_combined(ARC, "evaluation")}
    codec = ArcCodec(30)
    # Every augmented test label maps back to the task's true output.
    for i in range(len(test)):
        name = info.extra["tasks"][test.arrays["task_index"][i]].split("/", 1)[1]
        truth = tasks[name].test[test.arrays["pair_index"][i]][1]
        back = split_version(test, i).inverse(crop(test.labels[i], 30))
        np.testing.assert_array_equal(back, np.array(truth))
    # Test inputs share their puzzle identifier with that version's demonstrations in the train split.
    train = load_split(path, "train")
    assert set(test.puzzle_identifiers) <= set(train.puzzle_identifiers)
    assert info.num_puzzle_identifiers == int(train.puzzle_identifiers.max()) + 1

    q = np.zeros(len(test))
    assert arc_pass_at_k(test, test.labels, q) == {"pass@1": 1.0, "pass@2": 1.0, "tasks": 4.0}
    # A wrong answer predicted by most versions outvotes the right one at pass@1, not at pass@2.
    wrong = test.labels.copy()
    identity = (test.arrays["dihedral"] == 0) & (test.arrays["colours"] == np.arange(10)).all(1)
    for i in np.flatnonzero(~identity):
        version = split_version(test, i)
        grid = version.inverse(crop(test.labels[i], 30))
        grid[0, 0] = (grid[0, 0] + 1) % 10  # the same wrong grid, expressed in each version's frame
        wrong[i] = codec.encode_grid(version.forward(grid).tolist())
    scores = arc_pass_at_k(test, wrong, q)
    assert scores["pass@1"] == 0.0 and scores["pass@2"] == 1.0
