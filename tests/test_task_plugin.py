"""A task defined in this one file, Latin-square completion, goes through all of trm-edge with no
other file touched: a checkpoint, an export validated on puzzles the task makes, the runtime with
verified halting on text in and out, a puzzle file, and test-time versions. All it takes is a
codec (everything task-specific) and `register`."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from trm_edge.checkpoint import save_checkpoint
from trm_edge.config import ModelConfig
from trm_edge.errors import TrmEdgeError
from trm_edge.export.exporter import export_onnx
from trm_edge.model import RecursiveReasoningModel
from trm_edge.runtime import Solver, VersionedRun
from trm_edge.runtime.puzzle_files import read_puzzles
from trm_edge.tasks import TASKS, BaseCodec, PuzzleError, get_codec, register

N = 4  # a 4x4 square, symbols 1-4; tokens 0 padding, 1 blank, 1 + s for symbol s


@dataclass(frozen=True)
class LatinMap:
    """Rows, columns and symbols permuted: a Latin square stays one, givens stay given."""

    rows: np.ndarray
    cols: np.ndarray
    symbols: np.ndarray  # new symbol of each symbol, 0 (blank) kept

    def forward(self, tokens: np.ndarray) -> np.ndarray:
        grid = np.asarray(tokens).reshape(-1, N, N)[:, self.rows][:, :, self.cols]
        return (self.symbols[grid - 1] + 1).reshape(np.shape(tokens))

    def inverse(self, tokens: np.ndarray) -> np.ndarray:
        back = np.argsort(self.symbols)[np.asarray(tokens).reshape(-1, N, N) - 1] + 1
        out = np.empty_like(back)
        out[:, self.rows[:, None], self.cols[None, :]] = back
        return out.reshape(np.shape(tokens))


class LatinSquareCodec(BaseCodec):
    name = "latin4"
    seq_len = N * N
    vocab_size = N + 2
    can_verify = True
    legend = "a 4x4 Latin square: every symbol once in each row and column"

    def encode(self, text: str) -> np.ndarray:
        cells = "".join(text.split())
        if len(cells) != N * N or any(c not in ".1234" for c in cells):
            raise PuzzleError(f"a {N}x{N} Latin square is {N * N} cells of 1-{N} or '.'")
        return np.array([1 if c == "." else int(c) + 1 for c in cells], dtype=np.int32)

    def decode(self, tokens: np.ndarray) -> str:
        return "".join("." if t <= 1 or t > N + 1 else str(t - 1) for t in np.asarray(tokens).reshape(-1))

    def verify(self, puzzles: np.ndarray, answers: np.ndarray) -> np.ndarray:
        given = np.asarray(puzzles).reshape(-1, N, N) - 1
        grid = np.asarray(answers).reshape(-1, N, N) - 1
        keeps = ~((given > 0) & (grid != given)).any(axis=(1, 2))
        onehot = grid[..., None] == np.arange(1, N + 1)
        return keeps & (onehot.sum(axis=1) == 1).all(axis=(1, 2)) & (onehot.sum(axis=2) == 1).all(axis=(1, 2))

    def symmetries(self, count: int, seed: int = 0) -> list[Any]:
        rng = np.random.default_rng(seed)
        maps = [LatinMap(np.arange(N), np.arange(N), np.arange(N + 1))]
        while len(maps) < count:
            maps.append(LatinMap(rng.permutation(N), rng.permutation(N), np.concatenate([[0], rng.permutation(N) + 1])))
        return maps

    def sample_puzzles(self, count: int, seed: int = 0) -> np.ndarray:
        rng = np.random.default_rng(seed)
        r, c = np.divmod(np.arange(N * N), N)
        square = (r + c) % N + 2  # the cyclic Latin square, as tokens
        out = np.ones((count, N * N), np.int32)
        for i, version in enumerate(self.symmetries(count, seed)):
            full = version.forward(square)
            keep = rng.choice(N * N, size=int(rng.integers(6, 11)), replace=False)
            out[i, keep] = full[keep]
        return out


@pytest.fixture
def latin(monkeypatch: pytest.MonkeyPatch) -> Iterator[LatinSquareCodec]:
    monkeypatch.setitem(TASKS, LatinSquareCodec.name, LatinSquareCodec)  # what `register` does, undone after
    yield LatinSquareCodec()


@pytest.fixture
def latin_export(latin: LatinSquareCodec, tmp_path: Path) -> Path:
    torch.manual_seed(0)
    config = ModelConfig(arch="trm", seq_len=N * N, vocab_size=N + 2, hidden_size=32, num_heads=2, expansion=2,
                         H_cycles=1, L_cycles=2, L_layers=1, halt_max_steps=6, forward_dtype="float32", task=latin.name)
    checkpoint = save_checkpoint(RecursiveReasoningModel(config), tmp_path / "latin.safetensors")
    result = export_onnx(checkpoint, tmp_path / "export", "fp32")
    assert result.validation is not None and result.validation.passed
    assert "latin4 puzzles the task's codec made" in result.metadata.validation["puzzles"]  # type: ignore[index]
    return result.directory


def test_the_codec_is_a_task(latin: LatinSquareCodec) -> None:
    assert get_codec("latin4").name == "latin4" and register(LatinSquareCodec) is LatinSquareCodec
    puzzles = latin.sample_puzzles(32, seed=1)
    assert puzzles.shape == (32, N * N) and not latin.verify(puzzles, puzzles).any()  # blanks are no answer
    r, c = np.divmod(np.arange(N * N), N)
    square = (r + c) % N + 2
    for version in latin.symmetries(4, seed=2):
        moved = version.forward(square)
        assert latin.verify(moved[None], moved[None]).all()  # a version of a solution is a solution
        np.testing.assert_array_equal(version.inverse(moved), square)
        np.testing.assert_array_equal(version.inverse(version.forward(puzzles)), puzzles)


def test_a_task_in_one_file_runs_end_to_end(latin: LatinSquareCodec, latin_export: Path, tmp_path: Path) -> None:
    solver = Solver.load(latin_export, backend="ort-cpu", slots=8)
    assert solver.policy.verified  # auto is verified halting: the task can check its answers
    texts = [latin.decode(p) for p in latin.sample_puzzles(12, seed=5)]
    results = solver.solve(texts)
    assert [r.index for r in results] == list(range(12))
    for r in results:
        assert r.verified == bool(latin.verify(r.puzzle, r.answer)[0]) and 1 <= r.steps <= solver.max_steps
        assert r.text == latin.decode(r.answer)
    file = tmp_path / "puzzles.txt"
    file.write_text("# a comment line\n" + "\n".join(texts) + "\n")
    assert read_puzzles(file, solver.codec) == texts
    with pytest.raises(PuzzleError, match="4x4 Latin square"):
        solver.solve(["12x"])
    run = VersionedRun(solver, versions=3, seed=0)
    versioned = run.solve([solver.encode(t) for t in texts])
    assert [r.index for r in versioned] == list(range(12))
    for r in versioned:
        assert r.verified == bool(latin.verify(r.puzzle, r.answer)[0])  # an answer mapped back to the puzzle's frame
        assert 1 <= r.versions_run <= 3 and r.version_steps >= r.steps


def test_an_unknown_task_is_a_clear_error() -> None:
    with pytest.raises(TrmEdgeError, match="has no puzzle codec .known: sudoku, maze, arc"):
        get_codec("latin9")
