"""Property-based fuzzing of everything that reads outside input: any input gives a result or a
TrmEdgeError (a one-line message for a person), never another exception.

Covers the task codecs, the puzzle file readers (lines, CSV, ARC JSON), the npz reader, the
trm_edge.json loader and the serving request contract. Bounded example counts keep it at well
under two minutes on two cores.
"""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from trm_edge.errors import TrmEdgeError
from trm_edge.runtime.export_dir import read_metadata
from trm_edge.runtime.labels import load_puzzles
from trm_edge.runtime.puzzle_files import read_puzzles
from trm_edge.runtime.serving.requests import read_request
from trm_edge.runtime.solver import Solver
from trm_edge.tasks import ArcCodec, MazeCodec, SudokuCodec

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
SCRATCH = Path(tempfile.mkdtemp(prefix="trm-edge-fuzz-"))

# Text near the formats: their own characters, digits of other scripts, control characters, JSON.
NEAR_SUDOKU = st.text(alphabet=st.sampled_from("0123456789.\n \t²٤４x#,"), max_size=120)
NEAR_MAZE = st.text(alphabet=st.sampled_from("# SGo\n\r.x"), max_size=60)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=6), inner, max_size=6),
    max_leaves=40,
)


def _only_clear_errors(fn, *args):  # type: ignore[no-untyped-def]
    try:
        return fn(*args)
    except TrmEdgeError:
        return None


@FUZZ
@given(NEAR_SUDOKU | st.text(max_size=100))
def test_sudoku_codec(text: str) -> None:
    tokens = _only_clear_errors(SudokuCodec().encode, text)
    if tokens is not None:
        assert tokens.shape == (81,) and tokens.min() >= 1 and tokens.max() <= 10


@FUZZ
@given(NEAR_MAZE)
def test_maze_codec(text: str) -> None:
    tokens = _only_clear_errors(MazeCodec(4).encode, text)
    if tokens is not None:
        assert tokens.shape == (16,) and set(tokens.tolist()) <= {1, 2, 3, 4}


@FUZZ
@given(JSON_VALUES)
def test_arc_codec(value: object) -> None:
    try:
        text = json.dumps(value)
    except ValueError:  # NaN and the like are not JSON: send them as Python's repr
        text = repr(value)
    tokens = _only_clear_errors(ArcCodec(30).encode, text)
    if tokens is not None:
        assert tokens.shape == (900,) and tokens.max() <= 11


@FUZZ
@given(st.integers(1, 6), st.integers(0, 3), st.binary(max_size=64))
def test_verifiers_take_any_tokens(rows: int, seed: int, _: bytes) -> None:
    rng = np.random.default_rng(seed)
    for codec in (SudokuCodec(), MazeCodec(5)):
        puzzles = rng.integers(-3, 15, (rows, codec.seq_len))
        answers = rng.integers(-3, 15, (rows, codec.seq_len))
        assert codec.verify(puzzles, answers).shape == (rows,)


@FUZZ
@given(st.binary(max_size=300) | NEAR_SUDOKU.map(str.encode), st.sampled_from(["sudoku", "maze", "arc"]),
       st.sampled_from([".txt", ".csv", ".json"]))
def test_puzzle_files(content: bytes, task: str, suffix: str) -> None:
    path = SCRATCH / f"puzzles{suffix}"
    path.write_bytes(content)
    texts = _only_clear_errors(read_puzzles, path, task)
    assert texts is None or all(isinstance(t, str) for t in texts)


@FUZZ
@given(st.dictionaries(st.sampled_from(["inputs", "labels", "puzzles", "solutions", "puzzle_identifiers", "x"]),
                       hnp.arrays(st.sampled_from([np.int8, np.int32, np.int64, np.uint8, np.float32, np.bool_]),
                                  hnp.array_shapes(min_dims=0, max_dims=3, max_side=5)),
                       max_size=4))
def test_npz_reader(arrays: dict[str, np.ndarray]) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    path = SCRATCH / "puzzles.npz"
    path.write_bytes(buffer.getvalue())
    data = _only_clear_errors(load_puzzles, path, 81)
    if data is not None:
        assert data.inputs.dtype == np.int32 and data.inputs.shape[1] == 81 and len(data) > 0
        assert data.inputs.min() >= 0


@FUZZ
@given(st.binary(max_size=200))
def test_npz_reader_on_garbage(content: bytes) -> None:
    path = SCRATCH / "garbage.npz"
    path.write_bytes(content)
    assert _only_clear_errors(load_puzzles, path) is None


@pytest.fixture(scope="module")
def valid_metadata(reference_exports: dict[str, Path]) -> dict:  # type: ignore[type-arg]
    return read_metadata(reference_exports["trm_att_learned_maze"]).to_dict()


def _mutations(meta: dict) -> st.SearchStrategy:  # type: ignore[type-arg]
    """A valid trm_edge.json with one value anywhere replaced by something else."""
    paths: list[tuple] = []  # type: ignore[type-arg]

    def walk(node: object, at: tuple) -> None:  # type: ignore[type-arg]
        paths.append(at)
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, (*at, key))
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, (*at, i))

    walk(meta, ())
    return st.tuples(st.sampled_from(paths[1:]), JSON_VALUES | st.just(None) | st.just("../../etc/passwd"))


def _load_and_solve(export_dir: Path) -> None:
    Solver.load(export_dir, backend="ort-cpu", max_batch=2, halt="fixed:2").solve([np.full(36, 2, dtype=np.int32)])


def _replace(meta: dict, at: tuple, value: object) -> dict:  # type: ignore[type-arg]
    out = json.loads(json.dumps(meta))
    node = out
    for key in at[:-1]:
        node = node[key]
    node[at[-1]] = value
    return out


def test_metadata_loader(valid_metadata: dict, reference_exports: dict[str, Path], tmp_path: Path) -> None:  # type: ignore[type-arg]
    source = reference_exports["trm_att_learned_maze"]
    export_dir = tmp_path / "export"
    export_dir.mkdir()
    for graph in ("init.onnx", "step.onnx"):
        (export_dir / graph).symlink_to(source / graph)

    @FUZZ
    @given(_mutations(valid_metadata))
    def mutated(change: tuple) -> None:  # type: ignore[type-arg]
        at, value = change
        try:
            text = json.dumps(_replace(valid_metadata, at, value))
        except ValueError:
            return
        (export_dir / "trm_edge.json").write_text(text)
        _only_clear_errors(_load_and_solve, export_dir)

    mutated()

    @FUZZ
    @given(JSON_VALUES | st.binary(max_size=100))
    def any_file(value: object) -> None:
        path = export_dir / "trm_edge.json"
        if isinstance(value, bytes):
            path.write_bytes(value)
        else:
            try:
                path.write_text(json.dumps(value))
            except ValueError:
                return
        _only_clear_errors(read_metadata, export_dir)

    any_file()


@pytest.fixture(scope="module")
def maze_solver(reference_exports: dict[str, Path]) -> Solver:
    return Solver.load(reference_exports["trm_att_learned_maze"], backend="ort-cpu", max_batch=2)


TENSORS = st.one_of(
    st.none(),
    hnp.arrays(st.sampled_from([np.int32, np.int64, np.float32]),
               hnp.array_shapes(min_dims=0, max_dims=3, max_side=40), elements=st.integers(-5, 2**20)),
    hnp.arrays(np.int64, st.tuples(st.integers(1, 3), st.just(36)), elements=st.integers(-1, 8)),
    hnp.arrays(np.object_, hnp.array_shapes(min_dims=1, max_dims=2, max_side=3),
               elements=st.one_of(st.binary(max_size=50), NEAR_MAZE.map(str.encode), st.integers())),
)


@FUZZ
@given(TENSORS, TENSORS, TENSORS)
def test_serving_request_contract(maze_solver: Solver, tokens, ids, text) -> None:  # type: ignore[no-untyped-def]
    rows = _only_clear_errors(read_request, maze_solver, {"tokens": tokens, "puzzle_identifiers": ids, "puzzle": text})
    if rows is not None:
        assert all(t.shape == (maze_solver.seq_len,) and t.dtype == np.int32 for t, _ in rows)


def test_metadata_that_claims_puzzle_identifiers_the_graph_lacks(
    valid_metadata: dict, reference_exports: dict[str, Path], tmp_path: Path  # type: ignore[type-arg]
) -> None:
    """Found by the fuzzer above: a trm_edge.json saying the model takes puzzle identifiers when its
    graph has no such input fails at load with a clear error, not inside ONNX Runtime mid-solve."""
    source = reference_exports["trm_att_learned_maze"]
    for graph in ("init.onnx", "step.onnx"):
        (tmp_path / graph).symlink_to(source / graph)
    meta = json.loads(json.dumps(valid_metadata))
    meta["model"]["uses_puzzle_identifiers"] = True
    (tmp_path / "trm_edge.json").write_text(json.dumps(meta))
    with pytest.raises(TrmEdgeError, match="puzzle_identifiers"):
        Solver.load(tmp_path, backend="ort-cpu", max_batch=2)
