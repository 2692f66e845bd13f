"""Programs for a phone runtime (export --format executorch|litert, --backend executorch|litert):
written, validated, and looped by the same solver as every backend, giving ONNX Runtime fp32's answers.

These tests run in their own environment (pyproject's edge-dev extra: ExecuTorch needs numpy >= 2,
which the serve extra's Triton cannot take; docs/testing.md). A two-cycle TRM keeps the conversions
cheap (the shipped model's acceptance, 256 held-out puzzles, is benchmarks/edge_formats.py). CI sets
TRM_EDGE_REQUIRE_EDGE=1, so a missing runtime or converter fails there instead of skipping.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from trm_edge.env_flags import flag_is_set
from trm_edge.errors import PassedOverWarning, TrmEdgeError
from trm_edge.export.format_table import get_format
from trm_edge.programs import PROGRAM_FORMATS, RUNTIME_PACKAGES, installed_version
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
    width = ["--max-batch", "16"] if format == "executorch" else []  # LiteRT's fixed batch: 16 without --batch
    run_cli("export", str(small_checkpoint), "-o", str(out), "--format", format, *width)
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
    ours = Solver.load(directory, backend=format, halt=halt, slots=24).solve(puzzles)
    theirs = Solver.load(directory, backend="ort-cpu", precision="fp32", halt=halt, slots=24).solve(puzzles)
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


def test_the_programs_run_trajectories_as_onnx_runtime_does(program_export: tuple[str, Path]) -> None:
    """The same seeded noise on the programs' host state as on ONNX Runtime's: the same nudged run,
    and not the plain one."""
    from trm_edge.runtime.slots import SlotWork
    from trm_edge.runtime.trajectories import Noise, Nudger

    format, directory = program_export
    puzzle = _grids(1)[0]
    runs = {}
    for backend in (format, "ort-cpu"):
        solver = Solver.load(directory, backend=backend, precision="fp32", halt="fixed:4", slots=2)
        work = [SlotWork(puzzle, 0), SlotWork(puzzle, 0, Nudger(7, Noise(scale=0.5, steps=0)))]
        runs[backend] = sorted(solver.run_source(iter(work), known_count=2), key=lambda r: r.index)
    (plain, nudged), (their_plain, their_nudged) = runs[format], runs["ort-cpu"]
    assert not np.array_equal(nudged.answer, plain.answer)  # the noise reached the programs' state
    assert np.array_equal(nudged.answer, their_nudged.answer) and np.array_equal(plain.answer, their_plain.answer)


def test_the_cli_solves_with_the_programs_and_names_them(program_export: tuple[str, Path], tmp_path: Path) -> None:
    format, directory = program_export
    np.savez(tmp_path / "p.npz", inputs=_grids(8))
    # In this interpreter (the same entry point and error handler): a fresh one would import torch again.
    done = run_cli_in_process("solve", str(directory), str(tmp_path / "p.npz"), "--backend", format,
                              "-o", str(tmp_path / "out.npz"))
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


def _foreign_copy(directory: Path, tmp_path: Path, format: str, damage: str) -> tuple[Path, Path]:
    """A copy of the export whose step program is damaged (`truncated`, `garbage`) or carries another
    schema's identifier (`foreign`: what another version of the runtime would refuse), recorded in
    trm_edge.json as belonging (as a program made by another converter would be), so that the
    program loader's own handling is what is tested, not the metadata's sha256 check."""
    copy = Path(shutil.copytree(directory, tmp_path / damage, ignore=shutil.ignore_patterns("runtime_choices.json")))
    meta = json.loads((copy / "trm_edge.json").read_text())
    step = copy / meta["programs"][format]["step"]
    data = step.read_bytes()
    if damage == "truncated":
        data = data[: len(data) // 2]
    elif damage == "garbage":
        data = np.random.default_rng(0).integers(0, 256, len(data), dtype=np.uint8).tobytes()
    else:  # ET12 -> ET99, TFL3 -> TFL9: the identifier another schema version would carry
        data = data[:6] + (b"99" if format == "executorch" else b"L9") + data[8:]
    step.write_bytes(data)
    if step.name in meta.get("files", {}):
        meta["files"][step.name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    (copy / "trm_edge.json").write_text(json.dumps(meta))
    return copy, step


@pytest.mark.parametrize("damage", ["truncated", "garbage", "foreign"])
def test_a_damaged_or_foreign_program_is_one_line_and_auto_runs_another(
        program_export: tuple[str, Path], tmp_path: Path, damage: str) -> None:
    format, directory = program_export
    copy, step = _foreign_copy(directory, tmp_path, format, damage)
    # Named: one line naming the file and the fix, exit 2 (not the runtime's RuntimeError or ValueError).
    done = run_cli_in_process("solve", str(copy), "--backend", format, "." * 81)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert str(step) in lines[0] and f"export again with --format {format}" in lines[0], lines[0]
    assert "internal error" not in lines[0] and RUNTIME_PACKAGES[format] in lines[0]
    # auto: the programs are passed over with that line as a note, another backend runs.
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        solver = Solver.load(copy, slots=2)
    assert solver.choice is not None and solver.choice.backend != format
    notes = [str(w.message) for w in shown if issubclass(w.category, PassedOverWarning)]
    assert any(f"{format} fp32 passed over: {step}" in note for note in notes), notes
    assert solver.solve([_grids(1)[0]])[0].answer.shape == (81,)


def test_programs_made_for_another_runtime_version_say_so(program_export: tuple[str, Path], tmp_path: Path) -> None:
    """The runtime's version the programs were validated with is recorded at export and checked at
    load: programs that load on another version run with a note; ones that do not name both."""
    format, directory = program_export
    package = RUNTIME_PACKAGES[format]
    assert json.loads((directory / "trm_edge.json").read_text())["programs"][format]["software"][package] == (
        installed_version(package))
    for damage in ("intact", "foreign"):
        copy = (Path(shutil.copytree(directory, tmp_path / damage)) if damage == "intact"
                else _foreign_copy(directory, tmp_path, format, damage)[0])
        meta = json.loads((copy / "trm_edge.json").read_text())
        meta["programs"][format]["software"][package] = "0.0.1"
        (copy / "trm_edge.json").write_text(json.dumps(meta))
        if damage == "intact":
            with pytest.warns(PassedOverWarning, match=f"made and validated with {package} 0.0.1 run on {package} "
                              f"{installed_version(package)} here: export again with --format {format}"):
                Solver.load(copy, backend=format, slots=2)
        else:
            with pytest.raises(TrmEdgeError, match=f"cannot be loaded by {package} .*made it with {package} 0.0.1"):
                Solver.load(copy, backend=format, slots=2)
