"""What `--backend auto` and `--precision` choose, and the check a lower precision must pass first
(runtime/backends/choice.py, precision_check.py, openvino.py, registry.py). Real OpenVINO
and ONNX Runtime sessions throughout; on a CPU without native bf16 a bf16 request must be refused,
never run silently in float32."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trm_edge.contract.export_dir import read_metadata
from trm_edge.contract.validation_file import VALIDATION_FILE, read_validation_puzzles
from trm_edge.errors import PassedOverWarning, TrmEdgeError
from trm_edge.hardware import NO_NATIVE_BF16_ENV
from trm_edge.runtime.backends import openvino as openvino_backend
from trm_edge.runtime.backends.choice import backend_choices, cpu_choices
from trm_edge.runtime.backends.choice_cache import CACHE_FILE
from trm_edge.runtime.backends.openvino import native_precisions
from trm_edge.runtime.backends.precision_check import check_precision
from trm_edge.runtime.backends.registry import create_backend
from trm_edge.runtime.solver import Solver

from conftest import REFERENCE, TRAINED, run_cli, run_cli_in_process

NATIVE_BF16 = "bf16" in native_precisions("CPU")
# Every test here takes a branch by NATIVE_BF16 or reads what auto chose: on a CPU with native bf16,
# .ci/run runs them again as if it had none.
pytestmark = pytest.mark.precision_dependent


def test_auto_considers_what_openvino_reports(trained_export: Path) -> None:
    meta = read_metadata(trained_export)
    considered = [(c.backend, c.precision) for c in backend_choices("auto", trained_export, meta)]
    assert ("ort-cpu", "fp32") in considered and ("openvino", "fp32") in considered
    assert (("openvino", "bf16") in considered) == NATIVE_BF16  # a lower precision only where it is native
    assert [c.backend for c in cpu_choices("fp16")] == ["ort-cpu"]  # an fp16 export runs as exported


def test_auto_times_every_candidate_and_remembers_the_fastest(trained_export: Path, tmp_path: Path) -> None:
    """The first load measures (every candidate that passes its check), the next one reads the
    choice back from the export without compiling or checking anything else."""
    export_dir = _copy(trained_export, tmp_path)
    first = Solver.load(export_dir, slots=8)
    opened = first.opened
    assert opened is not None and not opened.remembered
    assert {"ort-cpu fp32", "openvino fp32"} <= set(opened.step_ms)
    assert min(opened.step_ms, key=opened.step_ms.get) == first.choice.label  # type: ignore[union-attr]
    assert "the fastest step measured here" in first.choice.why  # type: ignore[union-attr]
    if NATIVE_BF16:  # real validation puzzles: bf16 was checked, passed and timed
        assert "openvino bf16" in opened.step_ms, opened.notes
    again = Solver.load(export_dir, slots=8)
    assert again.opened.remembered and again.opened.step_ms == opened.step_ms  # type: ignore[union-attr]
    assert (again.backend_name, again.precision) == (first.backend_name, first.precision)
    # Another width is another measurement; a damaged cache costs only the measurement.
    assert not Solver.load(export_dir, slots=2).opened.remembered  # type: ignore[union-attr]
    (export_dir / CACHE_FILE).write_text("{not json")
    assert not Solver.load(export_dir, slots=8).opened.remembered  # type: ignore[union-attr]
    assert Solver.load(export_dir, slots=8).opened.remembered  # type: ignore[union-attr]
    # A changed export measures again.
    _touch(export_dir / "step.onnx")
    assert not Solver.load(export_dir, slots=8).opened.remembered  # type: ignore[union-attr]


def _touch(path: Path) -> None:
    import os

    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))


def _copy(export_dir: Path, tmp_path: Path) -> Path:
    import shutil

    out = tmp_path / "export"
    shutil.copytree(export_dir, out, ignore=shutil.ignore_patterns(CACHE_FILE, "openvino_cache"))
    return out


def test_the_export_keeps_its_validation_puzzles(trained_export: Path) -> None:
    meta = read_metadata(trained_export)
    tokens, ids, real = read_validation_puzzles(trained_export, meta)  # type: ignore[misc]
    expected = (np.load(TRAINED / "test_300.npz")["puzzles"][:16] + 1).astype(np.int32)
    np.testing.assert_array_equal(tokens, expected)
    assert real and ids.shape == (16,)


def test_a_damaged_validation_file_is_a_clear_error(trained_export: Path, tmp_path: Path) -> None:
    for item in trained_export.iterdir():
        (tmp_path / item.name).symlink_to(item)
    (tmp_path / VALIDATION_FILE).unlink()
    np.savez(tmp_path / VALIDATION_FILE, tokens=np.full((2, 81), 99), puzzle_identifiers=np.zeros(2), real=True)
    with pytest.raises(TrmEdgeError, match="does not fit this export's model"):
        read_validation_puzzles(tmp_path, read_metadata(trained_export))  # (read_metadata(tmp_path) refuses the file)


def test_bf16_on_a_cpu_without_it_is_refused_not_run_in_fp32(trained_export: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """On a CPU without native bf16 (or one treated so: TRM_EDGE_NO_NATIVE_BF16) bf16 is an error."""
    if NATIVE_BF16:
        monkeypatch.setenv(NO_NATIVE_BF16_ENV, "1")
    assert native_precisions("CPU") == ["fp32"]
    with pytest.raises(TrmEdgeError, match="does not run bf16 natively"):
        Solver.load(trained_export, backend="openvino", precision="bf16")
    proc = run_cli("solve", str(trained_export), "--backend", "bf16", "." * 81, check=False)
    assert proc.returncode == 2 and "bf16" in proc.stderr and "Traceback" not in proc.stderr
    with pytest.raises(TrmEdgeError, match="runs the precision this export was made in"):
        Solver.load(trained_export, backend="ort-cpu", precision="bf16")
    with pytest.raises(TrmEdgeError, match="is not one of auto, fp32, bf16, fp16"):
        Solver.load(trained_export, precision="int4")


def test_the_precision_check_passes_a_faithful_backend_and_refuses_a_perturbed_one(
    trained_export: Path, trained_checkpoint: Path, tmp_path: Path
) -> None:
    """The check compares a backend with its fp32 twin on the export's validation puzzles: the same
    graph on OpenVINO against ONNX Runtime agrees; the same model with its weights perturbed by 5%
    (what a broken lower precision looks like) does not."""
    import torch

    from trm_edge.checkpoint import load_checkpoint, save_checkpoint
    from trm_edge.export.exporter import export_onnx

    meta = read_metadata(trained_export)
    verifier = Solver.load(trained_export, backend="ort-cpu", slots=1).verifier
    candidate = create_backend("openvino", trained_export, meta, 4, None, "fp32")
    twin = create_backend("ort-cpu", trained_export, meta, 1, None, "fp32")
    check = check_precision(candidate, twin, trained_export, meta, verifier)
    # Both fp32, the same graph in two engines: they agree on every cell but summation-order flips.
    assert check.passed and check.real_puzzles and check.agreement > 0.999, check.summary()
    assert check.verified is not None and check.verified[0] == check.verified[1] > 0
    assert candidate.width == 4  # its width is restored after the check

    model = load_checkpoint(trained_checkpoint)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for weight in model.parameters():
            weight.mul_(1 + 0.05 * torch.randn(weight.shape, generator=generator))
    perturbed = export_onnx(save_checkpoint(model, tmp_path / "p.safetensors"), tmp_path / "p", "fp32",
                            validate=False).directory
    impostor = create_backend("ort-cpu", perturbed, read_metadata(perturbed), 1, None, "fp32")
    refused = check_precision(impostor, twin, trained_export, meta, verifier)
    assert not refused.passed, refused.summary()


def test_auto_falls_back_when_a_lower_precision_cannot_run(
    trained_export: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CPU that claims bf16 but whose OpenVINO cannot run it (here: claimed for this test on a CPU
    without it, or treated as without it) costs nothing but a one-line note: auto runs fp32."""
    export_dir = _copy(trained_export, tmp_path)
    if NATIVE_BF16:
        monkeypatch.setenv(NO_NATIVE_BF16_ENV, "1")
    monkeypatch.setattr(openvino_backend, "lowered_precisions", lambda name: ["bf16"])
    with pytest.warns(PassedOverWarning, match="openvino bf16 passed over.*natively"):
        solver = Solver.load(export_dir, slots=2)
    assert solver.precision == "fp32"
    assert any("openvino bf16 passed over" in note and "natively" in note for note in solver.choice_notes)
    with pytest.warns(PassedOverWarning):
        solver = Solver.load(export_dir, backend="openvino", slots=2)
    assert (solver.backend_name, solver.precision) == ("openvino", "fp32")


def test_doctor_says_what_auto_runs_here_with_its_figures(trained_export: Path) -> None:
    shown = run_cli_in_process("doctor", "--export", str(trained_export), check=True).stdout
    assert "openvino" in shown and "auto (CPU)" in shown and "auto runs" in shown
    assert "ms per step" in shown and "ort-cpu fp32" in shown and "openvino fp32" in shown
    if NATIVE_BF16:
        assert ("openvino bf16" in shown and "precision check passed" in shown) or "bf16 passed over" in shown
    # The choice is remembered now; --measure measures again (a choice made on a busy machine).
    assert "remembered" in run_cli_in_process("doctor", "--export", str(trained_export)).stdout
    measured = run_cli_in_process("doctor", "--export", str(trained_export), "--measure")
    again = measured.stdout
    assert "remembered" not in again and "ms per step" in again and "spread" in again
    assert "choosing a backend" not in measured.stderr  # no terminal there: no spinner in a log
    alone = run_cli_in_process("doctor", "--measure")
    assert alone.returncode == 2 and "give --export DIR too" in alone.stderr


def test_the_first_measurement_says_what_it_does_on_a_terminal(trained_export: Path, tmp_path: Path) -> None:
    """auto's first load of an export measures for seconds: on a terminal the CLI shows a status line
    on stderr while it does (rich's spinner, as export's); the library says nothing unless asked."""
    import os
    import pty
    import subprocess
    import sys

    from trm_edge.runtime.backends.timing import MEASURING_STATUS

    assert MEASURING_STATUS.get() is None  # embedded: quiet
    export_dir = _copy(trained_export, tmp_path)  # nothing remembered yet
    terminal, stderr = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "trm_edge", "solve", str(export_dir), "." * 81],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr,
                            env={**os.environ, "TERM": "xterm", "COLUMNS": "200"})
    os.close(stderr)
    shown = b""
    while True:
        try:
            chunk = os.read(terminal, 1 << 16)
        except OSError:  # EIO: the command closed its end
            break
        if not chunk:
            break
        shown += chunk
    os.close(terminal)
    assert proc.wait(timeout=600) == 0, shown.decode(errors="replace")
    text = shown.decode(errors="replace")
    assert "choosing a backend: opening, checking and timing" in text and "candidates at 1 slot (" in text, text
    assert "(remembered for next time)" in text


def test_a_plain_export_validates_on_puzzles_its_task_makes(tmp_path: Path) -> None:
    """Without --data a Sudoku export validates on generated Sudokus, keeps them as real puzzles,
    and auto can check a lower precision on them."""
    from trm_edge.export.exporter import export_onnx
    from trm_edge.shipped import shipped_checkpoint

    result = export_onnx(shipped_checkpoint("sudoku"), tmp_path / "plain", "fp32")
    tokens, ids, real = read_validation_puzzles(result.directory, result.metadata)  # type: ignore[misc]
    assert real and tokens.shape == (32, 81) and (ids == 0).all()
    assert "sudoku puzzles the task's codec made" in result.metadata.validation["puzzles"]  # type: ignore[index]
    if NATIVE_BF16:
        solver = Solver.load(result.directory, slots=16)
        assert "openvino bf16" in solver.opened.step_ms, solver.choice_notes  # type: ignore[union-attr]


def test_an_export_on_random_tokens_says_so_and_is_never_lowered(
    converted_reference: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model whose task makes no puzzles, exported without --data, validates on random tokens:
    the export says so in one line, and auto passes over a lower precision with a one-line note
    naming the fix."""
    proc = run_cli_in_process("export", str(converted_reference["trm_att_arc"]), "-o", str(tmp_path / "arc"),
                              check=True)
    notice = [line for line in proc.stdout.splitlines() if "validated on random tokens" in line]
    assert len(notice) == 1 and "at its own precision" in notice[0] and "--data" in notice[0], proc.stdout
    monkeypatch.setattr(openvino_backend, "lowered_precisions", lambda name: ["bf16"])
    with pytest.warns(PassedOverWarning, match="no real validation puzzles.*--data"):
        solver = Solver.load(tmp_path / "arc", slots=2)
    assert solver.precision == "fp32"
    # The commands print it as one line.
    shown = run_cli_in_process("solve", str(tmp_path / "arc"), str(REFERENCE / "trm_att_arc.expected.npz"),
                               "-o", str(tmp_path / "o.npz"))
    notes = [line for line in shown.stderr.splitlines() if line.startswith("note:")]
    assert shown.returncode == 0 and len(notes) == 1 and "passed over" in notes[0], shown.stderr


def test_streams_and_a_static_width_answer_as_the_plain_step(trained_export: Path) -> None:
    """The forms auto also weighs (OpenVINO: the batch split over streams, a step compiled for one
    width) give the plain step's answers, and keep working when the width changes under them."""
    meta = read_metadata(trained_export)
    tokens = (np.load(TRAINED / "test_300.npz")["puzzles"][:4] + 1).astype(np.int32)
    runs = {}
    for form in ({}, {"streams": 2}, {"static_width": 4}):
        backend = create_backend("openvino", trained_export, meta, 4, None, "fp32", **form)
        backend.set_inputs(tokens, np.zeros(4, np.int32))
        answers = [backend.step(np.arange(4) < (4 if k == 0 else 0))[0].copy() for k in range(3)]
        backend.reslot(np.array([2]), 1)  # one puzzle left: streams and the static step give way to the plain one
        answers.append(backend.step(np.zeros(1, dtype=bool))[0].copy())
        runs[str(form)] = answers
    plain = runs.pop("{}")
    for form, answers in runs.items():
        for k, (got, expected) in enumerate(zip(answers, plain, strict=True)):
            np.testing.assert_array_equal(got, expected, err_msg=f"{form} step {k + 1}")


def test_a_new_backend_in_the_registry_is_weighed_and_remembered(trained_export: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """auto's candidates, and what a remembered choice may hold, come from the registry alone: a
    backend added as one entry (here OpenVINO's module under another name, running the export's own
    step and a step compiled for one width) is timed beside the others, is chosen where it is the
    fastest, and is remembered."""
    from trm_edge.runtime.backends import choice, registry, timing

    twin = registry.BackendEntry("openvino-plain", "openvino", "cpu", True, "openvino", "OpenVINO, fp32 only",
                                 (registry.EXPORT, registry.STATIC))
    monkeypatch.setitem(registry.BACKENDS, twin.name, twin)
    meta = read_metadata(trained_export)
    assert ("openvino-plain", "fp32") in choice._possible("auto", "auto", meta)
    assert ("openvino-plain", "bf16") not in choice._possible("auto", "auto", meta)  # it does not lower
    assert ("openvino", "bf16") in choice._possible("auto", "auto", meta)  # a lowered precision may be remembered
    assert ("ort-cpu", "bf16") not in choice._possible("auto", "auto", meta)  # ONNX Runtime does not lower
    export_dir = _copy(trained_export, tmp_path)
    every = dict(registry.BACKENDS)
    monkeypatch.delitem(registry.BACKENDS, "openvino")  # fewer compiles: ONNX Runtime stands for the others
    monkeypatch.setattr(timing, "TIMING_PASSES", 1)  # one pass of 3 rounds: which wins is not the question here
    monkeypatch.setattr(timing, "TIMING_ROUNDS", timing.SETTLING_STEPS)
    weighed = Solver.load(export_dir, slots=2).opened
    assert weighed is not None and set(weighed.step_ms) == {"openvino-plain fp32", "openvino-plain fp32 static:2",
                                                            "ort-cpu fp32"}  # timed beside it at two slots
    # The only CPU backend left: it is chosen (the faster of its two forms, both timed) and remembered.
    monkeypatch.delitem(registry.BACKENDS, "ort-cpu")
    alone = Solver.load(export_dir, slots=2, measure=True)
    assert alone.choice is not None and alone.opened is not None and alone.choice.backend == "openvino-plain"
    assert set(alone.opened.step_ms) == {"openvino-plain fp32", "openvino-plain fp32 static:2"}
    assert alone.choice.label == min(alone.opened.step_ms, key=alone.opened.step_ms.get)  # type: ignore[arg-type]
    # The whole registry again, in its order (error messages list the backends in it): the new
    # backend's choice is read back.
    registry.BACKENDS.clear()
    registry.BACKENDS.update(every)
    again = Solver.load(export_dir, slots=2)
    assert again.opened is not None and again.opened.remembered and again.choice == alone.choice


def test_a_busy_moment_times_the_candidates_again() -> None:
    """The fastest two within each other's spread, or a noisy contender, are timed again; a clear
    winner is not, nor a tie (every contender within 10% of the fastest, none noisy: another pass
    could change the choice by no more than that; backends/timing.py: `unclear`)."""
    from trm_edge.runtime.backends.timing import StepTiming, unclear

    clear = {"a": StepTiming(50.0, 2.0, 5), "b": StepTiming(90.0, 5.0, 5), "c": StepTiming(120.0, 30.0, 5)}
    assert unclear(clear) == []
    overlapping = {"a": StepTiming(50.0, 8.0, 5), "b": StepTiming(58.0, 6.0, 5), "c": StepTiming(120.0, 3.0, 5)}
    assert unclear(overlapping) == ["a", "b"]
    tied = {"a": StepTiming(50.0, 4.0, 5), "b": StepTiming(54.0, 5.0, 5), "c": StepTiming(120.0, 3.0, 5)}
    assert unclear(tied) == []
    noisy = {"a": StepTiming(50.0, 20.0, 5), "b": StepTiming(200.0, 5.0, 5)}
    assert unclear(noisy) == ["a"]
    noisy_tie = {"a": StepTiming(50.0, 4.0, 5), "b": StepTiming(53.0, 20.0, 5)}
    assert unclear(noisy_tie) == ["a", "b"]  # a busy moment may hide a clear winner inside a tie


def test_one_step_of_each_never_settles_a_close_call() -> None:
    """A large model's step spends the timing budget at once: a close call (here 1.203 s against
    1.253 s single steps, the replica of a paper-size ARC choice once read as a tie at once) is timed
    until each contender has SETTLING_STEPS steps; a clear winner needs no more than one."""
    from trm_edge.runtime.backends.timing import SETTLING_STEPS, summarise, time_steps, unclear

    assert unclear(summarise({"a": [1.203], "b": [1.253]})) == ["a", "b"]
    assert unclear(summarise({"a": [1.203, 1.21], "b": [1.253, 1.25]})) == ["a", "b"]
    assert unclear(summarise({"a": [1.203] * 3, "b": [1.253] * 3})) == []  # a tie, now on 3 steps each
    assert unclear(summarise({"a": [1.0], "b": [2.0]})) == []  # b is out of reach: a stands clear

    class Clock:
        now = 0.0

        def __call__(self) -> float:
            return self.now

    class Stepping:  # a backend whose every step takes `seconds` on the clock the timing reads
        def __init__(self, clock: Clock, seconds: float) -> None:
            self.clock, self.seconds, self.width = clock, seconds, 1

        def resize(self, width: int) -> None:
            self.width = width

        def set_inputs(self, tokens: np.ndarray, ids: np.ndarray) -> None:
            pass

        def step(self, reset: np.ndarray) -> None:
            self.clock.now += self.seconds

    clock = Clock()
    tokens, ids = np.zeros((2, 81), np.int32), np.zeros(2, np.int32)
    close = {"a": Stepping(clock, 1.203), "b": Stepping(clock, 1.253), "c": Stepping(clock, 3.0)}
    timings = time_steps(close, tokens, ids, 4, clock=clock)  # type: ignore[arg-type]
    assert timings["a"].steps >= SETTLING_STEPS and timings["b"].steps >= SETTLING_STEPS, timings
    assert timings["c"].steps == 1 and timings["a"].median_ms == 1203.0  # the clear loser is not timed again
    assert all(backend.width == 1 for backend in close.values())  # each back at its own width


def test_the_remembered_choice_is_per_set_of_cores(trained_export: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A process pinned to other cores (taskset, a container's cpuset) chooses again."""
    from trm_edge.runtime.backends import choice_cache

    meta = read_metadata(trained_export)
    key = choice_cache.choice_key(trained_export, meta, "auto", "auto", 16, None)
    monkeypatch.setattr(choice_cache, "usable_cores", lambda: [0])
    assert choice_cache.choice_key(trained_export, meta, "auto", "auto", 16, None) != key


def test_the_remembered_choice_is_per_export_file_library_and_code(
    trained_export: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every file a candidate runs (the int8 step and the phone programs too), every runtime
    library's version and trm-edge's own source change the key: an editable install keeps one version
    string across commits, so a choice made by older code must not be reused."""
    import shutil
    from dataclasses import replace

    from trm_edge.runtime.backends import choice_cache

    export_dir = _copy(trained_export, tmp_path)
    meta = replace(read_metadata(export_dir), int8={"file": "step_int8.onnx"},
                   programs={"executorch": {"init": "init.pte", "step": "step.pte", "width": 16},
                             "litert": {"init": "init.tflite", "step": "step.tflite", "width": 16}})
    for name in ("step_int8.onnx", "init.pte", "step.pte", "init.tflite", "step.tflite", "solve.onnx"):
        (export_dir / name).write_bytes(b"0")

    def key() -> dict:  # type: ignore[type-arg]
        return choice_cache.choice_key(export_dir, meta, "auto", "auto", 16, None)

    first = key()
    assert set(first["export"]) == {"trm_edge.json", "validation.npz", "init.onnx", "step.onnx", "step_int8.onnx",
                                    "init.pte", "step.pte", "init.tflite", "step.tflite"}
    for name in first["export"]:
        before = key()
        _touch(export_dir / name)
        assert key() != before, name
    before = key()
    _touch(export_dir / "solve.onnx")  # no CPU candidate runs it
    assert key() == before
    # Each library as another version would read: a distribution's metadata found first on the path.
    assert set(first["libraries"]) >= {"onnxruntime", "openvino", "executorch", "ai-edge-litert", "tensorrt"}
    for package in first["libraries"]:
        info = tmp_path / "site" / package / f"{package.replace('-', '_')}-0.0.1.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: 0.0.1\n")
        monkeypatch.syspath_prepend(str(info.parent))
        again = key()
        assert again["libraries"][package] == "0.0.1" and again != before, package
        before = again
    # The code: the hash reads the folders the package's modules come from, and any change to a file.
    roots = choice_cache.code_roots()
    assert Path(choice_cache.__file__).parent.parent in roots and first["code"] == choice_cache.code_hash()
    assert choice_cache.source_hash(roots) == choice_cache.code_hash()
    copy = Path(shutil.copytree(roots[0], tmp_path / "code", ignore=shutil.ignore_patterns("__pycache__")))
    hashed = choice_cache.source_hash([copy])
    edited = next(copy.rglob("*.py"))
    edited.write_text(edited.read_text() + "\n")
    assert choice_cache.source_hash([copy]) != hashed
