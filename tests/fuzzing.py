"""The fuzz targets: every reader of outside input, each with the Hypothesis strategy that feeds it
and the property it must keep (any input gives a result or a TrmEdgeError, a one-line message for a
person, never another exception).

Two ways to run them:
- `tests/test_fuzz.py` (CI): the `ci` profile, each target seeded by its name, so every run of a
  commit tries the same examples; the examples tried are counted and hashed (printed at the end of
  the run) so two runs can be compared.
- `tests/fuzz_long.py`: random seeds for as long as asked; a failing example (shrunk by
  Hypothesis) is saved under `tests/fixtures/fuzz_findings/`, which `tests/test_fuzz.py` replays as
  regular tests.

Examples are saved as tagged JSON (`encode_example` / `decode_example`) so a finding survives any
Hypothesis upgrade.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import math
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from hypothesis.internal.conjecture import providers
from hypothesis.internal.constants_ast import Constants, constants_from_module
from hypothesis.internal.floats import float_to_int
from sortedcontainers import SortedSet

from trm_edge.errors import TrmEdgeError

FINDINGS = Path(__file__).parent / "fixtures" / "fuzz_findings"
SOURCE = Path(__file__).resolve().parents[1]
SOURCE_FOLDERS = ("trm_edge", "train", "export", "runtime")
CI_EXAMPLES = 150  # per target; with the seeds fixed, the same 150 on every run


@cache
def source_constants() -> Constants:
    found = Constants()
    for folder in SOURCE_FOLDERS:
        for path in sorted((SOURCE / folder).rglob("*.py")):
            module = ModuleType(path.stem)
            module.__file__ = str(path)
            found |= constants_from_module(module)
    # Sorted, as Hypothesis keeps its own: a plain set's order changes with PYTHONHASHSEED.
    return Constants(integers=SortedSet(found.integers), floats=SortedSet(found.floats, key=float_to_int),
                     bytes=SortedSet(found.bytes), strings=SortedSet(found.strings))


# Hypothesis mixes constants "from the code under test" into examples: those of the local modules
# this process has imported so far, so the examples would change with which tests ran first. Here
# they are those of every module of trm-edge's source, whatever is imported (hypothesis is pinned in
# the dev extra because this replaces one of its internal functions; test_fuzz.py checks it works).
providers._get_local_constants = source_constants


PROFILE = {"deadline": None, "database": None, "print_blob": False, "suppress_health_check": list(HealthCheck)}
settings.register_profile("ci", max_examples=CI_EXAMPLES, **PROFILE)
settings.register_profile("long", max_examples=2000, **PROFILE)

# Text near the formats: their own characters, digits of other scripts, control characters, JSON.
NEAR_SUDOKU = st.text(alphabet=st.sampled_from("0123456789.\n \t²٤４x#,"), max_size=120)
NEAR_MAZE = st.text(alphabet=st.sampled_from("# SGo\n\r.x"), max_size=60)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=6), inner, max_size=6),
    max_leaves=40,
)


def only_clear_errors(fn: Callable[..., Any], *args: Any) -> Any:
    """fn(*args), or None when it raised a TrmEdgeError; any other exception is a finding."""
    try:
        return fn(*args)
    except TrmEdgeError:
        return None


class FuzzContext:
    """What some targets need beyond their example: a scratch folder, a real export to mutate and a
    solver for serving requests. Built from the reference maze export (fp32, tiny)."""

    def __init__(self, maze_export: Path | None) -> None:
        self.scratch = Path(tempfile.mkdtemp(prefix="trm-edge-fuzz-"))
        self.maze_export = maze_export
        self._solver: Any = None
        self._metadata: dict[str, Any] | None = None
        self._mutable_export: Path | None = None

    @property
    def solver(self) -> Any:
        from trm_edge.runtime.solver import Solver

        if self._solver is None:
            self._solver = Solver.load(self._export(), backend="ort-cpu", slots=2)
        return self._solver

    @property
    def metadata(self) -> dict[str, Any]:
        from trm_edge.contract.export_dir import read_metadata

        if self._metadata is None:
            self._metadata = read_metadata(self._export()).to_dict()
        return self._metadata

    @property
    def mutable_export(self) -> Path:
        """An export folder whose graphs link to the real ones and whose trm_edge.json targets rewrite."""
        if self._mutable_export is None:
            self._mutable_export = self.scratch / "export"
            self._mutable_export.mkdir()
            for graph in ("init.onnx", "step.onnx"):
                (self._mutable_export / graph).symlink_to(self._export() / graph)
        return self._mutable_export

    def _export(self) -> Path:
        if self.maze_export is None:
            raise RuntimeError("this target needs the reference maze export")
        return self.maze_export


@dataclass(frozen=True)
class Target:
    name: str
    strategy: Callable[[FuzzContext], st.SearchStrategy[Any]]  # the context lets a strategy use real metadata
    check: Callable[[FuzzContext, Any], None]  # raises when the property fails
    needs_export: bool = False


TARGETS: dict[str, Target] = {}


def target(name: str, strategy: Callable[[FuzzContext], st.SearchStrategy[Any]], needs_export: bool = False):  # type: ignore[no-untyped-def]
    def register(check: Callable[[FuzzContext, Any], None]) -> Callable[[FuzzContext, Any], None]:
        TARGETS[name] = Target(name, strategy, check, needs_export)
        return check

    return register


# ---- the targets -------------------------------------------------------------------------------


@target("sudoku_codec", lambda _: NEAR_SUDOKU | st.text(max_size=100))
def _sudoku_codec(_: FuzzContext, text: str) -> None:
    from trm_edge.tasks import SudokuCodec

    tokens = only_clear_errors(SudokuCodec().encode, text)
    if tokens is not None:
        assert tokens.shape == (81,) and tokens.min() >= 1 and tokens.max() <= 10


@target("maze_codec", lambda _: NEAR_MAZE)
def _maze_codec(_: FuzzContext, text: str) -> None:
    from trm_edge.tasks import MazeCodec

    tokens = only_clear_errors(MazeCodec(4).encode, text)
    if tokens is not None:
        assert tokens.shape == (16,) and set(tokens.tolist()) <= {1, 2, 3, 4}


@target("arc_codec", lambda _: JSON_VALUES)
def _arc_codec(_: FuzzContext, value: Any) -> None:
    from trm_edge.tasks import ArcCodec

    try:
        text = json.dumps(value)
    except ValueError:  # NaN and the like are not JSON: send them as Python's repr
        text = repr(value)
    tokens = only_clear_errors(ArcCodec(30).encode, text)
    if tokens is not None:
        assert tokens.shape == (900,) and tokens.max() <= 11


@target("verifiers", lambda _: st.tuples(st.integers(1, 6), st.integers(0, 2**32 - 1)))
def _verifiers(_: FuzzContext, example: tuple[int, int]) -> None:
    from trm_edge.tasks import MazeCodec, SudokuCodec

    rows, rng_seed = example
    rng = np.random.default_rng(rng_seed)
    for codec in (SudokuCodec(), MazeCodec(5)):
        puzzles = rng.integers(-3, 15, (rows, codec.seq_len))
        answers = rng.integers(-3, 15, (rows, codec.seq_len))
        assert codec.verify(puzzles, answers).shape == (rows,)


@target("puzzle_files", lambda _: st.tuples(
    st.binary(max_size=300) | NEAR_SUDOKU.map(str.encode), st.sampled_from(["sudoku", "maze", "arc"]),
    st.sampled_from([".txt", ".csv", ".json"])))
def _puzzle_files(ctx: FuzzContext, example: tuple[bytes, str, str]) -> None:
    from trm_edge.runtime.puzzle_files import read_puzzles
    from trm_edge.tasks import get_codec

    content, task, suffix = example
    path = ctx.scratch / f"puzzles{suffix}"
    path.write_bytes(content)
    texts = only_clear_errors(read_puzzles, path, get_codec(task))
    assert texts is None or all(isinstance(t, str) for t in texts)


NPZ_ARRAYS = st.dictionaries(
    st.sampled_from(["inputs", "labels", "puzzles", "solutions", "puzzle_identifiers", "x"]),
    hnp.arrays(st.sampled_from([np.int8, np.int32, np.int64, np.uint8, np.float32, np.bool_]),
               hnp.array_shapes(min_dims=0, max_dims=3, max_side=5)),
    max_size=4,
)


@target("npz_reader", lambda _: NPZ_ARRAYS)
def _npz_reader(ctx: FuzzContext, arrays: dict[str, np.ndarray]) -> None:
    from trm_edge.contract.held_out import load_puzzles

    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    path = ctx.scratch / "puzzles.npz"
    path.write_bytes(buffer.getvalue())
    data = only_clear_errors(load_puzzles, path, 81)
    if data is not None:
        assert data.inputs.dtype == np.int32 and data.inputs.shape[1] == 81 and len(data) > 0
        assert data.inputs.min() >= 0


@target("npz_garbage", lambda _: st.binary(max_size=200))
def _npz_garbage(ctx: FuzzContext, content: bytes) -> None:
    from trm_edge.contract.held_out import load_puzzles

    path = ctx.scratch / "garbage.npz"
    path.write_bytes(content)
    assert only_clear_errors(load_puzzles, path) is None


def _metadata_mutations(ctx: FuzzContext) -> st.SearchStrategy[Any]:
    """A valid trm_edge.json with one value anywhere replaced by something else."""
    paths: list[tuple[Any, ...]] = []

    def walk(node: object, at: tuple[Any, ...]) -> None:
        paths.append(at)
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, (*at, key))
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, (*at, i))

    walk(ctx.metadata, ())
    return st.tuples(st.sampled_from(paths[1:]), JSON_VALUES | st.just(None) | st.just("../../etc/passwd"))


@target("metadata_mutations", _metadata_mutations, needs_export=True)
def _metadata_mutated(ctx: FuzzContext, change: tuple[tuple[Any, ...], Any]) -> None:
    at, value = change
    meta = json.loads(json.dumps(ctx.metadata))
    node = meta
    for key in at[:-1]:
        node = node[key]
    node[at[-1]] = value
    try:
        text = json.dumps(meta)
    except ValueError:
        return
    (ctx.mutable_export / "trm_edge.json").write_text(text)
    only_clear_errors(_load_and_solve, ctx.mutable_export)


def _load_and_solve(export_dir: Path) -> None:
    from trm_edge.runtime.solver import Solver

    Solver.load(export_dir, backend="ort-cpu", slots=2, halt="fixed:2").solve([np.full(36, 2, dtype=np.int32)])


@target("metadata_file", lambda _: JSON_VALUES | st.binary(max_size=100), needs_export=True)
def _metadata_file(ctx: FuzzContext, value: Any) -> None:
    from trm_edge.contract.export_dir import read_metadata

    path = ctx.mutable_export / "trm_edge.json"
    if isinstance(value, bytes):
        path.write_bytes(value)
    else:
        try:
            path.write_text(json.dumps(value))
        except ValueError:
            return
    only_clear_errors(read_metadata, ctx.mutable_export)


TENSORS = st.one_of(
    st.none(),
    hnp.arrays(st.sampled_from([np.int32, np.int64, np.float32]),
               hnp.array_shapes(min_dims=0, max_dims=3, max_side=40), elements=st.integers(-5, 2**20)),
    hnp.arrays(np.int64, st.tuples(st.integers(1, 3), st.just(36)), elements=st.integers(-1, 8)),
    hnp.arrays(np.object_, hnp.array_shapes(min_dims=1, max_dims=2, max_side=3),
               elements=st.one_of(st.binary(max_size=50), NEAR_MAZE.map(str.encode), st.integers())),
)


@target("serving_request", lambda _: st.tuples(TENSORS, TENSORS, TENSORS), needs_export=True)
def _serving_request(ctx: FuzzContext, tensors: tuple[Any, Any, Any]) -> None:
    from trm_edge.runtime.serving.requests import read_request

    tokens, ids, text = tensors
    rows = only_clear_errors(read_request, ctx.solver, {"tokens": tokens, "puzzle_identifiers": ids, "puzzle": text})
    if rows is not None:
        assert all(t.shape == (ctx.solver.seq_len,) and t.dtype == np.int32 for t, _ in rows)


KSERVE_INPUT = st.fixed_dictionaries(
    {"name": st.sampled_from(["tokens", "puzzle", "puzzle_identifiers", "x"]) | JSON_VALUES,
     "shape": st.lists(st.integers(-2, 2**41) | st.sampled_from([0, 1, 81, 2**40, 2**62]), max_size=4) | JSON_VALUES},
    optional={"datatype": st.sampled_from(["INT32", "BYTES", "FP32", "INT64", "X"]) | JSON_VALUES,
              "data": JSON_VALUES | st.lists(st.integers(0, 9), max_size=200),
              "parameters": st.fixed_dictionaries({"binary_data_size": st.integers(-1, 2**41) | JSON_VALUES})},
)


@st.composite
def near_valid_binary(draw: st.DrawFn) -> tuple[dict[str, Any], int]:
    """A binary-extension header whose sizes are right or off by a little, and the bytes after it."""
    inputs, total = [], 0
    for name in draw(st.lists(st.sampled_from(["tokens", "puzzle_identifiers", "puzzle"]), min_size=1, max_size=3)):
        rows = draw(st.integers(0, 17))
        per_row = {"tokens": 81, "puzzle_identifiers": 1, "puzzle": 1}[name]
        shape = [rows, draw(st.sampled_from([per_row, per_row + 1, 1]))]
        datatype = "BYTES" if name == "puzzle" else draw(st.sampled_from(["INT32", "INT32", "INT64", "FP16"]))
        each = draw(st.integers(4, 200)) if datatype == "BYTES" else {"INT32": 4, "INT64": 8, "FP16": 2}[datatype]
        size = max(0, rows * shape[1] * each + draw(st.sampled_from([0, 0, 0, -1, 1, -4, 4])))
        total += size
        inputs.append({"name": name, "shape": shape, "datatype": datatype, "parameters": {"binary_data_size": size}})
    return {"inputs": inputs}, total + draw(st.sampled_from([0, 0, 0, 1, -1]))


@target("guard_header", lambda _: near_valid_binary() | st.tuples(
    st.fixed_dictionaries({"inputs": st.lists(KSERVE_INPUT, max_size=3)}) | JSON_VALUES,
    st.integers(0, 4096) | st.sampled_from([0, 324, 2**40])))
def _guard_header(_: FuzzContext, example: tuple[Any, int]) -> None:
    """What passes the HTTP guard never declares more than the model takes."""
    from trm_edge.runtime.serving.limits import RejectedRequest, check_infer_header, solver_limits

    header, binary_bytes = example
    limits = solver_limits(81, 16)
    try:
        check_infer_header(header, limits, binary_bytes)
    except RejectedRequest as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    if not isinstance(header, dict) or not isinstance(header.get("inputs"), list):
        assert binary_bytes == 0
        return
    binary = 0
    for spec in header["inputs"]:
        rows, *row = spec["shape"]
        limit = limits.inputs[spec["name"]]
        assert 0 <= rows <= 16 and math.prod(row) <= limit.values_per_row
        size = (spec.get("parameters") or {}).get("binary_data_size")
        binary += size or 0
        assert size is None or size <= rows * limit.values_per_row * (limit.bytes_per_value + 4)
    assert binary == binary_bytes


# ---- running them ------------------------------------------------------------------------------


@dataclass
class Ledger:
    """The examples a run tried, per target: how many and a hash of their text."""

    counts: dict[str, int] = field(default_factory=dict)
    hashes: dict[str, Any] = field(default_factory=dict)
    last: dict[str, Any] = field(default_factory=dict)

    def record(self, name: str, example: Any) -> None:
        self.counts[name] = self.counts.get(name, 0) + 1
        self.hashes.setdefault(name, hashlib.sha256()).update(repr_example(example).encode() + b"\n")
        self.last[name] = example

    def digest(self) -> str:
        total = hashlib.sha256()
        for name in sorted(self.hashes):
            total.update(f"{name}:{self.counts[name]}:{self.hashes[name].hexdigest()}\n".encode())
        return total.hexdigest()[:16]

    def summary(self) -> str:
        return f"{sum(self.counts.values())} examples over {len(self.counts)} targets, sha256 {self.digest()}"


LEDGER = Ledger()


def target_seed(name: str) -> int:
    return zlib.crc32(name.encode())


def run_target(
    name: str, ctx: FuzzContext, profile: str = "ci", rng_seed: int | None = None, ledger: Ledger = LEDGER,
    max_examples: int | None = None,
) -> None:
    """Run one target under a profile; `rng_seed` None seeds it by its name (the same examples on
    every run). Raises what the property raised, for the smallest example Hypothesis found."""
    spec = TARGETS[name]
    overrides = {} if max_examples is None else {"max_examples": max_examples}

    @settings(settings.get_profile(profile), **overrides)
    @seed(target_seed(name) if rng_seed is None else rng_seed)
    @given(spec.strategy(ctx))
    def property_holds(example: Any) -> None:
        ledger.record(name, example)
        spec.check(ctx, example)

    property_holds()


def repr_example(example: Any) -> str:
    """A stable text of an example (numpy arrays with dtype and shape), for hashing."""
    return json.dumps(encode_example(example), sort_keys=True)


def encode_example(value: Any) -> Any:
    """Tagged JSON for the values the strategies make (saved findings must outlive Hypothesis)."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return {"int": str(value)}
    if isinstance(value, float):
        return {"float": repr(value)}
    if isinstance(value, bytes):
        return {"bytes": base64.b64encode(value).decode()}
    if isinstance(value, tuple):
        return {"tuple": [encode_example(v) for v in value]}
    if isinstance(value, list):
        return [encode_example(v) for v in value]
    if isinstance(value, dict):
        return {"dict": [[encode_example(k), encode_example(v)] for k, v in value.items()]}
    if isinstance(value, np.ndarray):
        if value.dtype == np.object_:
            return {"objects": [encode_example(v) for v in value.ravel().tolist()], "shape": list(value.shape)}
        return {"array": base64.b64encode(value.tobytes()).decode(), "dtype": value.dtype.str,
                "shape": list(value.shape)}
    raise TypeError(f"cannot save an example of type {type(value).__name__}")


def decode_example(value: Any) -> Any:
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, list):
        return [decode_example(v) for v in value]
    (tag,) = set(value) - {"dtype", "shape"}
    if tag == "int":
        return int(value["int"])
    if tag == "float":
        return float(value["float"])  # repr of nan/inf reads back with float()
    if tag == "bytes":
        return base64.b64decode(value["bytes"])
    if tag == "tuple":
        return tuple(decode_example(v) for v in value["tuple"])
    if tag == "dict":
        return {decode_example(k): decode_example(v) for k, v in value["dict"]}
    if tag == "objects":
        out = np.empty(math.prod(value["shape"]), dtype=np.object_)
        for i, item in enumerate(value["objects"]):  # one by one: numpy would unpack sequences
            out[i] = decode_example(item)
        return out.reshape(value["shape"])
    raw = base64.b64decode(value["array"])
    return np.frombuffer(raw, dtype=np.dtype(value["dtype"])).reshape(value["shape"]).copy()


def save_finding(name: str, example: Any, error: BaseException, folder: Path = FINDINGS) -> Path:
    """Write a failing example where `tests/test_fuzz.py` replays it; the file name is its hash, so
    the same finding twice is one file."""
    encoded = encode_example(example)
    digest = hashlib.sha256(json.dumps(encoded, sort_keys=True).encode()).hexdigest()[:12]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-{digest}.json"
    first_line = (str(error).strip().splitlines() or [""])[0][:300]
    path.write_text(json.dumps({"target": name, "error": f"{type(error).__name__}: {first_line}",
                                "example": encoded}, indent=1) + "\n")
    return path


def load_finding(path: Path) -> tuple[str, Any]:
    doc = json.loads(path.read_text())
    return doc["target"], decode_example(doc["example"])
