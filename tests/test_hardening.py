"""The probe's defects, each as the case that broke: files that escape or corrupt an export,
unchecked values, memory that followed --batch, and tracebacks instead of one-line errors."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from trm_edge.atomic import atomic_write
from trm_edge.contract.export_dir import METADATA_FILE, read_metadata, write_metadata
from trm_edge.errors import TrmEdgeError
from trm_edge.runtime.solver import Solver
from trm_edge.tasks import SudokuCodec

from conftest import TRAINED, cli_runner_for_many_cases, run_cli

SUDOKU = "...2...633....54.1..1..398........9....538....3........263..5..5.37....847...1..."


def _copy(export_dir: Path, tmp_path: Path, name: str = "export") -> Path:
    out = tmp_path / name
    shutil.copytree(export_dir, out)
    return out


def _edit_metadata(export_dir: Path, change) -> None:  # type: ignore[no-untyped-def]
    meta = json.loads((export_dir / METADATA_FILE).read_text())
    change(meta)
    (export_dir / METADATA_FILE).write_text(json.dumps(meta))


# 2. Digits of other scripts are not ASCII digits.
@pytest.mark.parametrize("char", ["²", "٤", "４"])
def test_only_ascii_digits_are_digits(char: str) -> None:
    with pytest.raises(TrmEdgeError, match="use digits 1-9"):
        SudokuCodec().encode(SUDOKU[:-1] + char)


# 3. A failed write leaves the previous trm_edge.json whole.
def test_metadata_write_that_fails_mid_way_keeps_the_old_file(trained_export: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    export_dir = _copy(trained_export, tmp_path)
    before = (export_dir / METADATA_FILE).read_bytes()
    meta = read_metadata(export_dir).with_halting("stable:2", {"data": "none"})

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(TrmEdgeError, match="No space left on device"):
        write_metadata(export_dir, meta)
    monkeypatch.undo()
    assert (export_dir / METADATA_FILE).read_bytes() == before
    assert sorted(p.name for p in export_dir.iterdir()) == sorted(p.name for p in trained_export.iterdir())
    Solver.load(export_dir, backend="ort-cpu", slots=1)  # still loads


# 5. Graph files resolve inside the export directory.
@pytest.mark.parametrize("file", ["../../ex/step.onnx", "/etc/passwd", "sub/step.onnx", ".."])
def test_graph_files_must_lie_inside_the_export(trained_export: Path, tmp_path: Path, file: str) -> None:
    export_dir = _copy(trained_export, tmp_path)
    _edit_metadata(export_dir, lambda m: m["graphs"]["step"].update(file=file))
    with pytest.raises(TrmEdgeError, match="inside the export directory"):
        Solver.load(export_dir, backend="ort-cpu")


# 6. An export that failed validation is not left runnable.
def test_failed_validation_leaves_no_runnable_export(converted_reference: dict[str, Path], tmp_path: Path) -> None:
    from trm_edge.checkpoint import load_checkpoint, save_checkpoint

    model = load_checkpoint(converted_reference["trm_mlp_sudoku"])
    with torch.no_grad():
        model.lm_head.weight[0, 0] = float("nan")
    broken = save_checkpoint(model, tmp_path / "nan.safetensors", info=model.info)
    out = tmp_path / "export"
    proc = run_cli("export", str(broken), "-o", str(out), check=False)
    assert proc.returncode == 2 and "validation failed" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()
    failed = tmp_path / "export.failed-validation"
    assert (failed / "step.onnx").is_file()
    json.loads((failed / METADATA_FILE).read_text())  # strict JSON: no NaN in it
    with pytest.raises(TrmEdgeError, match="failed its validation"):
        Solver.load(failed, backend="ort-cpu")


# 7. Memory follows the work, not --batch.
def test_slots_follow_the_puzzles_not_the_batch(trained_export: Path) -> None:
    solver = Solver.load(trained_export, backend="ort-cpu", slots=100_000)
    assert solver.slots == 100_000 and solver.backend.width <= 64
    result = solver.solve([SUDOKU])[0]
    assert result.verified and solver.backend.width <= 64
    with pytest.raises(TrmEdgeError, match="slots must lie in"):
        Solver.load(trained_export, backend="ort-cpu", slots=10**9)


# 8. Labels and integers are checked before they are used.
def test_labels_and_token_integers_are_checked(trained_export: Path, tmp_path: Path) -> None:
    data = np.load(TRAINED / "test_300.npz")
    inputs = (data["puzzles"][:40] + 1).astype(np.int64)
    cases = {
        "labels all 99": dict(inputs=inputs, labels=np.full_like(inputs, 99)),
        "NaN labels": dict(inputs=inputs, labels=np.full(inputs.shape, np.nan)),
        "tokens of 2**40": dict(inputs=np.where(inputs == 1, 2**40, inputs)),
        "label shape": dict(inputs=inputs, labels=inputs[:, :80]),
        "empty": dict(inputs=np.zeros((0, 81), np.int64)),
        "strings": dict(inputs=np.array([SUDOKU])),
        "ids of the wrong length": dict(inputs=inputs, puzzle_identifiers=np.zeros(3, np.int32)),
    }
    export_dir = _copy(trained_export, tmp_path)
    run_case = cli_runner_for_many_cases()
    for what, arrays in cases.items():
        path = tmp_path / "bad.npz"
        np.savez(path, **arrays)
        for command in (["calibrate", str(export_dir), "--data", str(path)],
                        ["solve", str(export_dir), str(path), "-o", str(tmp_path / "out.npz")]):
            proc = run_case(*command)
            assert proc.returncode == 2, (what, command[0], proc.stderr)
            assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, (what, proc.stderr)
    assert read_metadata(export_dir).halting.policy is None  # nothing stored from bad data


# 9 and 10. Bad command lines get one line, never a traceback, and never a half-done job.
def test_bad_invocations_get_one_line_errors(trained_export: Path, trained_checkpoint: Path, tmp_path: Path) -> None:
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"\xff\xfe\x00\x01" * 30)
    not_zip = tmp_path / "not_zip.npz"
    not_zip.write_text("hello")
    readonly = tmp_path / "readonly"
    readonly.mkdir()
    readonly.chmod(0o500)
    held = tmp_path / "held.npz"
    data = np.load(TRAINED / "test_300.npz")
    np.savez(held, puzzles=data["puzzles"][:8], solutions=data["solutions"][:8])
    oov = tmp_path / "oov.npz"
    np.savez(oov, inputs=np.full((2, 81), 50, np.int32))
    existing = tmp_path / "a_file"
    existing.write_text("x")
    ex = str(trained_export)
    cases = [
        (["solve", ex, str(binary)], "not UTF-8"),
        (["solve", ex, str(not_zip), "-o", str(tmp_path / "o.npz")], "cannot read puzzles"),
        (["solve", ex, str(held), "-o", str(tmp_path / "missing" / "o.npz")], "does not exist"),
        (["solve", ex, str(held), "-o", str(tmp_path)], "ending in .npz"),
        (["solve", ex, str(held), "-o", str(held)], "is the input"),
        (["bench", ex, "--puzzles", "0"], "--puzzles must be at least 1"),
        (["calibrate", ex, "--data", str(held), "--max-loss", "-1"], "--max-loss"),
        (["calibrate", ex, "--data", str(held), "--max-loss", "nan"], "--max-loss"),
        (["calibrate", ex, "--data", str(held), "-o", str(tmp_path / "dir")], "ending in .png"),
        (["export", str(trained_checkpoint), "-o", str(tmp_path / "e1"), "--validate-steps", "-1"], "--validate-steps"),
        (["export", str(trained_checkpoint), "-o", str(existing)], "is a file"),
        (["export", str(trained_checkpoint), "-o", str(tmp_path / "e2"), "--data", str(oov)], "must lie in [0, 11)"),
        (["solve", ex, SUDOKU, "--max-steps", "100000"], "max_steps must lie in"),
        (["solve", ex, SUDOKU, "--halt", "fixed:1000000000"], "fixed:N takes N up to"),
    ]
    if os.geteuid() != 0:  # root writes anywhere
        cases.append((["solve", ex, str(held), "-o", str(readonly / "o.npz")], "not writable"))
    run_case = cli_runner_for_many_cases()
    for args, words in cases:
        proc = run_case(*args)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert words in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, (args, proc.stderr)
    assert not (tmp_path / "e1").exists() and existing.read_text() == "x"


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda m: m["halting"].update(rule="rm -rf"), "halting.rule"),
        (lambda m: m.update(precision="int4"), "precision"),
        (lambda m: m["halting"].update(max_steps=2.5), "halting.max_steps"),
        (lambda m: m["halting"].update(policy="fixed:1000000000"), "more than 4096 steps"),
        (lambda m: m["model"].pop("seq_len"), "model.seq_len' is missing"),
        (lambda m: m["model"].update(vocab_size="11"), "model.vocab_size"),
        (lambda m: m["task"].update(options={"size": -1}), "task.options"),
        (lambda m: m["graphs"]["step"]["inputs"][1].update(dtype="float128"), "dtype"),
    ],
)
def test_metadata_values_are_checked_on_load(trained_export: Path, tmp_path: Path, change, words: str) -> None:  # type: ignore[no-untyped-def]
    export_dir = _copy(trained_export, tmp_path)
    _edit_metadata(export_dir, change)
    with pytest.raises(TrmEdgeError, match="is damaged") as err:
        Solver.load(export_dir, backend="ort-cpu")
    assert words in str(err.value)


def test_damaged_exports_get_one_line_errors(trained_export: Path, tmp_path: Path) -> None:
    garbage = _copy(trained_export, tmp_path, "garbage")
    (garbage / "step.onnx").write_bytes(b"not an onnx graph")
    truncated = _copy(trained_export, tmp_path, "truncated")
    step = truncated / "step.onnx"
    step.write_bytes(step.read_bytes()[: step.stat().st_size // 2])
    missing = _copy(trained_export, tmp_path, "missing")
    (missing / "init.onnx").unlink()
    nested = _copy(trained_export, tmp_path, "nested")
    (nested / METADATA_FILE).write_text("[" * 100_000 + "]" * 100_000)
    not_json = _copy(trained_export, tmp_path, "not_json")
    (not_json / METADATA_FILE).write_bytes(b"\xff\xfe garbage")
    swapped = _copy(trained_export, tmp_path, "swapped")
    _edit_metadata(swapped, lambda m: m["graphs"]["step"].update(file="init.onnx"))
    alien = "does not belong to this export"  # its size or hash is not the one trm_edge.json records
    for export_dir, words in ((garbage, alien), (truncated, alien), (missing, "not in"), (nested, "not valid JSON"),
                              (not_json, "not valid JSON"), (swapped, "does not match")):
        proc = run_cli("solve", str(export_dir), SUDOKU, check=False)
        assert proc.returncode == 2 and words in proc.stderr, (export_dir.name, proc.stderr)
        assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_two_interleaved_streams_on_one_solver_are_refused(trained_export: Path) -> None:
    solver = Solver.load(trained_export, backend="ort-cpu", slots=2)
    first = solver.solve_stream([SUDOKU] * 4)
    next(first)
    with pytest.raises(TrmEdgeError, match="already running another solve"):
        next(solver.solve_stream([SUDOKU]))
    assert len(list(first)) == 3  # the first stream is unharmed
    assert len(solver.solve([SUDOKU])) == 1  # and the solver works after it


def test_outputs_never_overwrite_inputs(tmp_path: Path) -> None:
    from trm_edge.atomic import ensure_not_input

    source = tmp_path / "model.pt"
    source.write_bytes(b"weights")
    with pytest.raises(TrmEdgeError, match="is the input"):
        ensure_not_input(tmp_path / "." / "model.pt", source)
    proc = run_cli("convert", str(source), "-o", str(source), check=False)
    assert proc.returncode == 2 and source.read_bytes() == b"weights"
    atomic_write(tmp_path / "out.json", "{}")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp files left


# 4. Puzzles whose callers gave up leave their slots mid-flight.
def test_a_feed_frees_the_slots_of_puzzles_given_up_mid_flight(trained_export: Path) -> None:
    import threading
    from concurrent.futures import wait

    from trm_edge.runtime.feed import SolverFeed

    solver = Solver.load(trained_export, backend="ort-cpu", slots=4, halt="fixed:16")
    feed = SolverFeed(solver).start()
    gave_up = threading.Event()
    asked = threading.Semaphore(0)

    def cancelled() -> bool:
        asked.release()
        return gave_up.is_set()

    try:
        futures = [feed.submit_encoded(solver.encode(SUDOKU), cancelled=cancelled) for _ in range(4)]
        for _ in range(8):  # asked at entry, then again while running
            assert asked.acquire(timeout=30)
        gave_up.set()
        done, _ = wait(futures, timeout=30)
        assert len(done) == 4 and all(f.cancelled() for f in futures)
        alone = feed.submit(SUDOKU).result(timeout=30)  # the slots are free again
        assert alone.steps == 16
        mine = feed.submit(SUDOKU)
        assert mine.cancel() or mine.done()  # a caller may cancel its own future too
    finally:
        feed.close()


def test_an_export_whose_task_has_no_codec_here_says_so(trained_export: Path, tmp_path: Path) -> None:
    """A plugin task not registered in this process still solves raw tokens, but says in one note
    that text puzzles and verified halting are off; options its codec does not take are an error."""
    from trm_edge.errors import TaskCodecWarning

    unknown = _copy(trained_export, tmp_path, "unknown")
    _edit_metadata(unknown, lambda m: m["task"].update(name="latin9"))
    with pytest.warns(TaskCodecWarning, match="task 'latin9' has no codec registered here.*register"):
        solver = Solver.load(unknown, backend="ort-cpu")
    assert solver.codec is None and solver.verifier is None and not solver.policy.verified
    puzzles = (np.load(TRAINED / "test_300.npz")["puzzles"][:2] + 1).astype(np.int32)
    np.savez(tmp_path / "in.npz", inputs=puzzles)
    proc = run_cli("solve", str(unknown), str(tmp_path / "in.npz"), "-o", str(tmp_path / "out.npz"),
                   "--backend", "ort-cpu")
    notes = [line for line in proc.stderr.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "latin9" in notes[0] and "Traceback" not in proc.stderr, proc.stderr
    wrong_options = _copy(trained_export, tmp_path, "options")
    _edit_metadata(wrong_options, lambda m: m["task"].update(options={"size": 9}))  # a Sudoku takes no size
    with pytest.raises(TrmEdgeError, match="does not take the options.*export the checkpoint again"):
        Solver.load(wrong_options, backend="ort-cpu")
