"""Programs for a phone runtime (export --format executorch|litert, --backend executorch|litert):
written, validated, and looped by the same solver as every backend, giving ONNX Runtime fp32's answers.

These tests run in their own environment (pyproject's edge-dev extra: ExecuTorch needs numpy >= 2,
which the serve extra's Triton cannot take; docs/testing.md). A two-cycle TRM keeps the conversions
cheap (the shipped model's acceptance, 256 held-out puzzles, is benchmarks/edge_formats.py). CI sets
TRM_EDGE_REQUIRE_EDGE=1, so a missing runtime or converter fails there instead of skipping.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from trm_edge.env_flags import flag_is_set
from trm_edge.errors import TrmEdgeError
from trm_edge.export.format_table import get_format
from trm_edge.programs import PROGRAM_FORMATS
from trm_edge.runtime.solver import Solver

from conftest import run_cli, run_cli_in_process

FORMATS = PROGRAM_FORMATS


def installed_or_skip(format: str) -> None:
    """Skip (fail under TRM_EDGE_REQUIRE_EDGE) where the format table says its converter or runtime is missing."""
    entry = get_format(format)
    missing = entry.missing()
    if missing:
        why = f"{', '.join(missing)} not installed (pip install 'trm-edge[{entry.extra}]')"
        if flag_is_set("TRM_EDGE_REQUIRE_EDGE"):
            pytest.fail(f"TRM_EDGE_REQUIRE_EDGE=1 and {why}")
        pytest.skip(why)


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


@pytest.fixture(scope="module", params=FORMATS)
def program_export(request: pytest.FixtureRequest, small_checkpoint: Path,
                   tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """(format, export directory): the CLI's export, its programs 16 rows wide."""
    format = request.param
    installed_or_skip(format)
    out = tmp_path_factory.mktemp(format) / "export"
    run_cli("export", str(small_checkpoint), "-o", str(out), "--format", format, "--max-batch", "16")
    return format, out


def _grids(count: int) -> np.ndarray:
    from trm_edge.tasks.sudoku import SudokuCodec

    return SudokuCodec().sample_puzzles(count, 3).astype(np.int32)


def test_the_export_writes_validated_programs(program_export: tuple[str, Path]) -> None:
    from trm_edge.contract.export_dir import read_metadata

    format, directory = program_export
    meta = read_metadata(directory)
    record = meta.programs[format]
    suffix = {"executorch": "pte", "litert": "tflite"}[format]
    assert (directory / f"init.{suffix}").is_file() and (directory / f"step.{suffix}").is_file()
    assert (directory / "step.onnx").is_file()  # the ONNX export stands beside them
    assert record["width"] == 16 and record["reset"] == "uint8"
    assert all(record["software"].values()), record["software"]  # the converter's versions
    assert record["validation"]["passed"] and "XNNPACK" in record["validation"]["engine"]


@pytest.mark.parametrize("halt", ["fixed:3", "model", "auto"])
def test_the_programs_loop_to_onnx_runtimes_answers(program_export: tuple[str, Path], halt: str) -> None:
    """40 puzzles through 16-row programs: tiles, a short last tile (padded for LiteRT's fixed width),
    and slots refilled as others halt."""
    format, directory = program_export
    puzzles = list(_grids(40))
    ours = Solver.load(directory, backend=format, halt=halt, max_batch=24).solve(puzzles)
    theirs = Solver.load(directory, backend="ort-cpu", precision="fp32", halt=halt, max_batch=24).solve(puzzles)
    assert [r.steps for r in ours] == [r.steps for r in theirs]
    differ = sum(not np.array_equal(a.answer, b.answer) for a, b in zip(ours, theirs, strict=True))
    assert differ == 0, differ
    assert not any(r.verified and not b.verified for r, b in zip(ours, theirs, strict=True))


def test_the_programs_run_test_time_versions(program_export: tuple[str, Path]) -> None:
    from trm_edge.runtime.versions import VersionedRun

    format, directory = program_export
    puzzles = [(g, 0) for g in _grids(6)]
    runs = [VersionedRun(Solver.load(directory, backend=b, precision="fp32"), versions=2) for b in (format, "ort-cpu")]
    ours, theirs = (sorted(run.solve_stream(iter(puzzles)), key=lambda r: r.index) for run in runs)
    assert [r.versions_run for r in ours] == [r.versions_run for r in theirs]
    assert all(np.array_equal(a.answer, b.answer) for a, b in zip(ours, theirs, strict=True))


def test_the_cli_solves_with_the_programs_and_names_them(program_export: tuple[str, Path], tmp_path: Path) -> None:
    format, directory = program_export
    np.savez(tmp_path / "p.npz", inputs=_grids(8))
    # In this interpreter (the same entry point and error handler): a fresh one would import torch again.
    done = run_cli_in_process("solve", str(directory), "--npz", str(tmp_path / "p.npz"), "--backend", format,
                              "--out", str(tmp_path / "out.npz"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"backend {format} fp32" in done.stdout + done.stderr
    assert "XNNPACK delegate" not in done.stdout + done.stderr  # the runtimes' start-up lines are held back
    assert np.load(tmp_path / "out.npz")["answers"].shape == (8, 81)


def test_auto_weighs_the_programs_where_the_export_holds_them(program_export: tuple[str, Path],
                                                               small_checkpoint: Path, tmp_path: Path) -> None:
    from trm_edge.contract.export_dir import read_metadata
    from trm_edge.export.exporter import export_onnx
    from trm_edge.runtime.backends.choice import backend_choices

    format, directory = program_export
    weighed = [c.backend for c in backend_choices("auto", directory, read_metadata(directory), "fp32")]
    assert format in weighed and "ort-cpu" in weighed
    plain = export_onnx(small_checkpoint, tmp_path / "plain", validate=False).directory
    with pytest.raises(TrmEdgeError, match=f"holds no {format} program: export it with .*--format {format}"):
        Solver.load(plain, backend=format)
    assert format not in [c.backend for c in backend_choices("auto", plain, read_metadata(plain), "fp32")]


@pytest.mark.parametrize("format", FORMATS)
def test_a_missing_converter_or_an_unlowerable_op_is_one_clear_line(format: str, monkeypatch: pytest.MonkeyPatch,
                                                                     small_checkpoint: Path) -> None:
    from trm_edge.checkpoint import load_checkpoint
    from trm_edge.export.program_export import CONVERTER_MODULES, lowering_error, require_converter

    monkeypatch.setitem(sys.modules, CONVERTER_MODULES[format], None)  # as if not installed
    with pytest.raises(TrmEdgeError, match=rf"--format {format} needs its converter: pip install 'trm-edge\["):
        require_converter(format)
    model = load_checkpoint(small_checkpoint)
    error = lowering_error(format, model, RuntimeError("Operator aten.scaled_dot_product_attention.default has no "
                                                       "kernel\n..."))
    assert f"{format} cannot lower the op aten.scaled_dot_product_attention.default" in str(error)
    error = lowering_error(format, model, ValueError("Failed to run converter passes: step.py:61:0: error: failed to "
                                                     "legalize operation 'tfl.not_equal' that was explicitly marked "
                                                     "illegal\n..."))
    assert f"{format} cannot lower the op tfl.not_equal" in str(error)
    assert "\n" not in str(error)
