"""Programs for a phone runtime (export --format executorch, --backend executorch): written,
validated, and looped by the same solver as every backend, giving ONNX Runtime fp32's answers.

A two-cycle TRM keeps the conversion cheap (the shipped model's takes ~1.5 minutes: its acceptance,
256 held-out puzzles, is benchmarks/edge_formats.py). CI installs the extra and sets
TRM_EDGE_REQUIRE_EDGE=1, so a missing runtime fails there instead of skipping.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from trm_edge.errors import TrmEdgeError
from trm_edge.runtime.solver import Solver

from conftest import run_cli, run_cli_in_process


def _executorch_or_skip() -> None:
    if importlib.util.find_spec("executorch") is None:
        if os.environ.get("TRM_EDGE_REQUIRE_EDGE") == "1":
            pytest.fail("TRM_EDGE_REQUIRE_EDGE=1 and executorch is not installed: pip install 'trm-edge[executorch]'")
        pytest.skip("executorch is not installed (pip install 'trm-edge[executorch]')")


@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    from trm_edge.checkpoint import save_checkpoint
    from trm_edge.config import ModelConfig
    from trm_edge.model import RecursiveReasoningModel

    torch.manual_seed(0)
    config = ModelConfig(arch="trm", seq_len=81, vocab_size=11, hidden_size=32, num_heads=2, expansion=2,
                         mlp_t=True, pos_encodings="none", L_layers=1, H_cycles=1, L_cycles=1, halt_max_steps=4,
                         task="sudoku", forward_dtype="float32")
    model = RecursiveReasoningModel(config)
    with torch.no_grad():  # damped: a random net's long loops are chaotic (answers would hang on rounding)
        for p in model.parameters():
            p.mul_(0.5)
    return save_checkpoint(model, tmp_path_factory.mktemp("edge") / "small.safetensors")


@pytest.fixture(scope="module")
def executorch_export(small_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    _executorch_or_skip()
    out = tmp_path_factory.mktemp("executorch") / "export"
    run_cli("export", str(small_checkpoint), "-o", str(out), "--format", "executorch", "--max-batch", "16")
    return out


def _grids(count: int) -> np.ndarray:
    from trm_edge.tasks.sudoku import SudokuCodec

    return SudokuCodec().sample_puzzles(count, 3).astype(np.int32)


def test_executorch_export_writes_validated_programs(executorch_export: Path) -> None:
    from trm_edge.contract.export_dir import read_metadata

    meta = read_metadata(executorch_export)
    record = meta.programs["executorch"]
    assert (executorch_export / "init.pte").is_file() and (executorch_export / "step.pte").is_file()
    assert (executorch_export / "step.onnx").is_file()  # the ONNX export stands beside them
    assert record["width"] == 16 and record["reset"] == "uint8" and record["software"]["executorch"].startswith("1.5")
    assert record["validation"]["passed"] and record["validation"]["engine"] == "ExecuTorch (XNNPACK)"


@pytest.mark.parametrize("halt", ["fixed:3", "model", "auto"])
def test_executorch_loops_to_onnx_runtimes_answers(executorch_export: Path, halt: str) -> None:
    """40 puzzles through 16-row programs: tiles, a short last tile, and slots refilled as others halt."""
    puzzles = list(_grids(40))
    ours = Solver.load(executorch_export, backend="executorch", halt=halt, max_batch=24).solve(puzzles)
    theirs = Solver.load(executorch_export, backend="ort-cpu", precision="fp32", halt=halt,
                         max_batch=24).solve(puzzles)
    assert [r.steps for r in ours] == [r.steps for r in theirs]
    differ = sum(not np.array_equal(a.answer, b.answer) for a, b in zip(ours, theirs, strict=True))
    assert differ == 0, differ
    assert not any(r.verified and not b.verified for r, b in zip(ours, theirs, strict=True))


def test_executorch_runs_test_time_versions(executorch_export: Path) -> None:
    from trm_edge.runtime.versions import VersionedRun

    puzzles = [(g, 0) for g in _grids(6)]
    runs = [VersionedRun(Solver.load(executorch_export, backend=b, precision="fp32"), versions=2)
            for b in ("executorch", "ort-cpu")]
    ours, theirs = (sorted(run.solve_stream(iter(puzzles)), key=lambda r: r.index) for run in runs)
    assert [r.versions_run for r in ours] == [r.versions_run for r in theirs]
    assert all(np.array_equal(a.answer, b.answer) for a, b in zip(ours, theirs, strict=True))


def test_the_cli_solves_with_executorch_and_names_it(executorch_export: Path, tmp_path: Path) -> None:
    grids = _grids(8)
    np.savez(tmp_path / "p.npz", inputs=grids)
    # In this interpreter (the same entry point and error handler): a fresh one would import torch again.
    done = run_cli_in_process("solve", str(executorch_export), "--npz", str(tmp_path / "p.npz"), "--backend",
                              "executorch", "--out", str(tmp_path / "out.npz"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "backend executorch fp32" in done.stdout + done.stderr
    assert np.load(tmp_path / "out.npz")["answers"].shape == (8, 81)


def test_an_export_without_programs_says_how_to_make_them(small_checkpoint: Path, tmp_path: Path) -> None:
    _executorch_or_skip()
    from trm_edge.export.exporter import export_onnx

    plain = export_onnx(small_checkpoint, tmp_path / "plain", validate=False).directory
    with pytest.raises(TrmEdgeError, match="holds no executorch program: export it with .*--format executorch"):
        Solver.load(plain, backend="executorch")
    # auto never weighs a backend whose programs the export lacks
    assert Solver.load(plain, backend="auto", precision="fp32").backend.name != "executorch"


def test_a_missing_converter_or_an_unlowerable_op_is_one_clear_line(monkeypatch: pytest.MonkeyPatch,
                                                                     small_checkpoint: Path) -> None:
    from trm_edge.checkpoint import load_checkpoint
    from trm_edge.export.program_export import lowering_error, require_converter

    monkeypatch.setitem(sys.modules, "executorch.exir", None)  # as if not installed
    with pytest.raises(TrmEdgeError, match=r"needs its converter: pip install 'trm-edge\[executorch\]'"):
        require_converter("executorch")
    error = lowering_error("executorch", load_checkpoint(small_checkpoint),
                           RuntimeError("Operator aten.scaled_dot_product_attention.default has no kernel\n..."))
    assert "executorch cannot lower the op aten.scaled_dot_product_attention.default" in str(error)
    assert "\n" not in str(error)
