"""solve.onnx: the whole solve as one ONNX graph (`trm-edge export --solve-graph`), run by plain
ONNX Runtime and OpenVINO, must give exactly the runtime's answers, steps and verified flags."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from trm_edge.app.solve_graph import SolveGraphRunner
from trm_edge.contract.export_dir import read_metadata
from trm_edge.contract.held_out import load_puzzles
from trm_edge.runtime.solver import Solver
from trm_edge.shipped import shipped_heldout

from conftest import REPO, run_cli_in_process

ENGINES = ("onnxruntime", "openvino")


@pytest.fixture(scope="module")
def sudoku_solve(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("solve") / "sudoku"
    shown = run_cli_in_process("export", "shipped:sudoku-small", "-o", str(out), "--solve-graph", check=True).stdout
    assert "solve.onnx (halting verified,stable:1" in shown and "runtime's answers and steps" in shown, shown
    return out


@pytest.fixture(scope="module")
def held_out() -> np.ndarray:
    return load_puzzles(shipped_heldout("sudoku"), 81).inputs[:256]


@pytest.fixture(scope="module")
def runtime_results(sudoku_solve: Path, held_out: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What `trm-edge solve` answers (fp32, every other default) for the held-out puzzles."""
    results = Solver.load(sudoku_solve, backend="ort-cpu", precision="fp32").solve(list(held_out))
    return (np.stack([r.answer for r in results]), np.array([r.steps for r in results]),
            np.array([bool(r.verified) for r in results]))


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("batch", [1, 16])
def test_the_graph_gives_the_runtimes_answers_steps_and_verdicts(
    engine: str, batch: int, sudoku_solve: Path, held_out: np.ndarray, runtime_results: tuple
) -> None:
    answers, steps, verified = runtime_results
    run = SolveGraphRunner(sudoku_solve / "solve.onnx", engine)
    runs = [run(held_out[i : i + batch]) for i in range(0, len(held_out), batch)]
    np.testing.assert_array_equal(np.concatenate([r.answer for r in runs]), answers)
    np.testing.assert_array_equal(np.concatenate([r.steps for r in runs]), steps)
    np.testing.assert_array_equal(np.concatenate([r.verified for r in runs]), verified)
    # fp32 (pinned): the shipped model verifies 99.7% of its held-out puzzles, so this compares real solves.
    assert verified.mean() > 0.95 and steps.max() <= 16


def test_the_export_describes_the_graph(sudoku_solve: Path) -> None:
    meta = read_metadata(sudoku_solve)
    assert meta.solve is not None
    assert (meta.solve["file"], meta.solve["halting"], meta.solve["max_steps"], meta.solve["verifies"]) == (
        "solve.onnx", "verified,stable:1", 16, True)
    assert meta.solve["validation"]["matched"] and meta.solve["validation"]["engines"] == ["onnxruntime CPU",
                                                                                         "openvino CPU"]


def test_the_example_needs_only_onnxruntime(sudoku_solve: Path, held_out: np.ndarray, runtime_results: tuple) -> None:
    script = REPO / "examples" / "solve_onnx.py"
    imported = {n.names[0].name.split(".")[0] for n in ast.walk(ast.parse(script.read_text()))
                if isinstance(n, ast.Import)} | {n.module.split(".")[0] for n in ast.walk(ast.parse(script.read_text()))
                                                  if isinstance(n, ast.ImportFrom) and n.module}
    assert "trm_edge" not in imported and "torch" not in imported and "onnxruntime" in imported
    puzzles = ["".join("." if t == 1 else str(t - 1) for t in row) for row in held_out[:5]]
    out = subprocess.run([sys.executable, str(script), str(sudoku_solve / "solve.onnx"), *puzzles, "--json"],
                         capture_output=True, text=True, check=True).stdout
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == len(puzzles), out  # one row per puzzle: an empty output is a failure, not a pass
    answers, steps, verified = runtime_results
    for i, row in enumerate(rows):
        assert row["answer"] == "".join(str(t - 1) for t in answers[i]) and row["steps"] == steps[i]
        assert row["verified"] is bool(verified[i])


def test_a_maze_graph_halts_by_the_fallback_and_never_claims_verified(tmp_path: Path) -> None:
    """A maze's rule (a shortest path) is not a graph's: the graph halts by the default's fallback
    (stable:1), says verified = false, and otherwise answers as the runtime does under that policy."""
    out = tmp_path / "maze"
    shown = run_cli_in_process("export", "shipped:maze-small", "-o", str(out), "--solve-graph", check=True).stdout
    assert "halting stable:1" in shown and "not verified in the graph" in shown, shown
    mazes = load_puzzles(shipped_heldout("maze"), 100).inputs[:48]
    got = SolveGraphRunner(out / "solve.onnx", "onnxruntime")(mazes)
    results = Solver.load(out, backend="ort-cpu", precision="fp32", halt="stable:1").solve(list(mazes))
    np.testing.assert_array_equal(got.answer, np.stack([r.answer for r in results]))
    np.testing.assert_array_equal(got.steps, [r.steps for r in results])
    assert not got.verified.any() and read_metadata(out).solve["verifies"] is False  # type: ignore[index]


def test_a_fixed_batch_export_has_no_solve_graph(tmp_path: Path) -> None:
    proc = run_cli_in_process("export", "shipped:sudoku-small", "-o", str(tmp_path / "fixed"), "--batch", "4",
                              "--solve-graph")
    assert proc.returncode == 2 and "--solve-graph needs a dynamic-batch export" in proc.stderr, proc.stderr


def test_without_openvino_the_graph_is_checked_in_onnx_runtime_alone(
    sudoku_solve: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A `[torch,cpu]` install has no OpenVINO: solve.onnx is still written, checked in ONNX Runtime,
    and the export says which check it skipped (it ended in an internal error)."""
    import io
    import shutil

    from rich.console import Console

    from trm_edge.app.solve_graph import write_solve_graph

    export_dir = Path(shutil.copytree(sudoku_solve, tmp_path / "export"))
    monkeypatch.setitem(sys.modules, "openvino", None)  # `import openvino` raises ImportError, as uninstalled
    shown = io.StringIO()
    write_solve_graph(export_dir, Console(file=shown, width=200))
    assert "OpenVINO's check of solve.onnx was skipped" in shown.getvalue() and "trm-edge[openvino]" in shown.getvalue()
    assert "steps in ONNX Runtime\n" in shown.getvalue() and (export_dir / "solve.onnx").is_file()
    meta = read_metadata(export_dir)
    assert meta.solve is not None and meta.solve["validation"]["engines"] == ["onnxruntime CPU"]


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_a_half_precision_export_is_refused_a_solve_graph_before_any_work(precision: str, tmp_path: Path) -> None:
    proc = run_cli_in_process("export", "shipped:sudoku-small", "-o", str(tmp_path / "e"), "--precision", precision,
                              "--solve-graph")
    assert proc.returncode == 2 and f"takes an fp32 export, not {precision}" in proc.stderr, proc.stderr
    assert "export fp32 with --solve-graph" in proc.stderr and not (tmp_path / "e").exists()
