"""The torch-free runtime: parity with the official model, halting, continuous batching."""

from __future__ import annotations

import json
import subprocess
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from trm_edge.contract.halting_policy import parse_policy
from trm_edge.contract.held_out import exact
from trm_edge.errors import TrmEdgeError
from trm_edge.runtime.solver import Solver

from conftest import CPU_BACKENDS, REFERENCE, TRAINED, reference_cases, run_cli_in_process


def test_runtime_imports_no_torch_and_no_onnx() -> None:
    code = (
        "import sys\n"
        "import trm_edge.runtime.solver, trm_edge.runtime.backends.onnxruntime, trm_edge.app.commands.solve\n"
        "import trm_edge.runtime.calibrate, trm_edge.runtime.bench, trm_edge.runtime.backends.tensorrt\n"
        "import trm_edge.tasks, trm_edge.contract.export_dir\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'onnx'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"the runtime imported {out}"


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("case", reference_cases())
def test_fixed_steps_answers_match_official(case: str, backend: str, reference_exports: dict[str, Path]) -> None:
    expected = np.load(REFERENCE / f"{case}.expected.npz")
    steps = expected["logits"].shape[0]
    solver = Solver.load(reference_exports[case], backend=backend, precision="fp32", slots=3,
                         halt=f"fixed:{steps}")
    puzzles = list(zip(expected["inputs"], expected["puzzle_identifiers"].tolist(), strict=True))
    results = solver.solve(puzzles)
    for r in results:
        assert r.steps == steps
        np.testing.assert_array_equal(r.answer, expected["logits"][steps - 1, r.index].argmax(-1))
        assert abs(r.halt_logit - expected["q_halt_logits"][steps - 1, r.index]) < 1e-4


def test_cli_npz_round_trip(reference_exports: dict[str, Path], tmp_path: Path) -> None:
    expected = np.load(REFERENCE / "trm_att_arc.expected.npz")
    src = tmp_path / "in.npz"
    np.savez(src, inputs=expected["inputs"], puzzle_identifiers=expected["puzzle_identifiers"])
    out = tmp_path / "out.npz"
    run_cli_in_process("solve", str(reference_exports["trm_att_arc"]), str(src), "-o", str(out), "--halt", "fixed:4",
                       "--backend", "ort-cpu", check=True)
    got = np.load(out)
    np.testing.assert_array_equal(got["answers"], expected["logits"][3].argmax(-1))
    np.testing.assert_array_equal(got["steps"], [4, 4, 4, 4])
    np.testing.assert_allclose(got["q_halt_logits"], expected["q_halt_logits"][3], atol=1e-4)


def test_text_puzzles_are_refused_where_an_export_tells_puzzles_apart_by_id(
    reference_exports: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Text carries no puzzle identifier: on an export that has many (ARC), every puzzle would run as
    id 0, a wrong answer given silently. One line names solve-arc and the .npz with ids instead; a
    folder given as a puzzle is named as a folder, whatever its name."""
    arc = str(reference_exports["trm_att_arc"])
    proc = run_cli_in_process("solve", arc, "0" * 30, "--backend", "ort-cpu")
    assert proc.returncode == 2 and "solve-arc" in proc.stderr and "puzzle_identifiers" in proc.stderr, proc.stderr
    (tmp_path / "puzzles").mkdir()
    monkeypatch.chdir(tmp_path)
    proc = run_cli_in_process("solve", str(reference_exports["trm_mlp_sudoku"]), "puzzles", "--backend", "ort-cpu")
    assert proc.returncode == 2 and "puzzles is a folder" in proc.stderr, proc.stderr


@pytest.fixture(scope="module")
def test_300() -> dict:
    data = np.load(TRAINED / "test_300.npz")
    return {"inputs": (data["puzzles"] + 1).astype(np.int32), "labels": (data["solutions"] + 1).astype(np.int32)}


def test_trained_model_fixed_16_steps_matches_official(trained_fixed16: list, test_300: dict) -> None:
    official = json.loads((TRAINED / "official_eval_test_300.json").read_text())
    results = trained_fixed16
    answers = np.stack([r.answer for r in results])
    solved = exact(answers, test_300["labels"]).sum()
    # fp32 (pinned) against the official code's own fp32 figures: within one puzzle (summation order).
    assert abs(solved - round(official["exact_fixed"] * 300)) <= 1
    assert all(r.steps == 16 for r in results)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_official_halting_rule_reproduces_official_figures(backend: str, trained_export: Path, test_300: dict) -> None:
    official = json.loads((TRAINED / "official_eval_test_300.json").read_text())
    solver = Solver.load(trained_export, backend=backend, precision="fp32", slots=64, halt="model")
    results = solver.solve(list(test_300["inputs"]))
    solved = exact(np.stack([r.answer for r in results]), test_300["labels"]).sum()
    # fp32 (pinned) against the official figures: within one puzzle, and a fiftieth of a step on average.
    assert abs(solved - round(official["exact_with_halting"] * 300)) <= 1
    assert abs(np.mean([r.steps for r in results]) - official["mean_steps_with_halting"]) < 0.02


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_hrm_halts_on_q_halt_above_q_continue(backend: str, reference_exports: dict[str, Path]) -> None:
    expected = np.load(REFERENCE / "hrm_att_sudoku.expected.npz")
    solver = Solver.load(reference_exports["hrm_att_sudoku"], backend=backend, precision="fp32", slots=4,
                         halt="model")
    results = solver.solve(list(zip(expected["inputs"], expected["puzzle_identifiers"].tolist(), strict=True)))
    fired = expected["q_halt_logits"] > expected["q_continue_logits"]  # (steps, B)
    for r in results:
        column = fired[:, r.index]
        if column.any():  # halts at the first step whose q_halt beats q_continue
            assert r.steps == int(np.argmax(column)) + 1
        else:  # never fired within the recorded steps: still running after them
            assert r.steps > len(column)


def test_max_steps_bounds_a_head_that_never_fires(converted_reference: dict[str, Path], tmp_path: Path) -> None:
    from trm_edge.checkpoint import load_checkpoint, save_checkpoint
    from trm_edge.export.exporter import export_onnx

    model = load_checkpoint(converted_reference["trm_att_learned_maze"])
    model.q_head.bias.data[:] = -1e4  # never halts by its own rule
    ckpt = save_checkpoint(model, tmp_path / "never.safetensors")
    directory = export_onnx(ckpt, tmp_path / "never", "fp32").directory
    tokens = np.random.default_rng(1).integers(1, 6, (5, 36), dtype=np.int32)
    for max_steps, expected in ((None, 8), (3, 3)):
        solver = Solver.load(directory, backend="ort-cpu", slots=2, halt="model", max_steps=max_steps)
        assert [r.steps for r in solver.solve(list(tokens))] == [expected] * 5
    solver = Solver.load(directory, backend="ort-cpu", halt="threshold:0.5,stable:50", max_steps=4)
    assert {r.steps for r in solver.solve(list(tokens))} == {4}


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_refill_keeps_order_and_answers_do_not_depend_on_the_batch(
    backend: str, trained_export: Path, test_300: dict
) -> None:
    puzzles = list(test_300["inputs"][:24])
    alone = [
        Solver.load(trained_export, backend=backend, precision="fp32", slots=1, halt="stable:1").solve([p])[0]
        for p in puzzles[:6]
    ]
    solver = Solver.load(trained_export, backend=backend, precision="fp32", slots=4, halt="stable:1")
    streamed = list(solver.solve_stream(iter(puzzles)))
    assert sorted(r.index for r in streamed) == list(range(24))  # each puzzle once
    by_index = {r.index: r for r in streamed}
    for r in alone:
        i = next(i for i, p in enumerate(puzzles) if (p == r.puzzle).all())
        np.testing.assert_array_equal(by_index[i].answer, r.answer)
        assert by_index[i].steps == r.steps


class PassThrough:
    """A backend seen through a wrapper (to watch or break its steps); everything else passes on."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_halted_slots_are_refilled_at_once(trained_export: Path, test_300: dict) -> None:
    """Continuous batching: backend steps ~ total puzzle-steps / slots, not the sum of per-batch maxima."""
    solver = Solver.load(trained_export, backend="ort-cpu", slots=8, halt="threshold:0.9")
    step_times: list[float] = []
    solver.step_timer = step_times.append
    pulled: list[int] = []

    def source():
        for i, p in enumerate(test_300["inputs"][:64]):
            pulled.append(i)
            yield p

    in_flight = []
    results = []
    for r in solver.solve_stream(source()):
        results.append(r)
        in_flight.append(len(pulled) - len(results) + 1)
    assert max(in_flight) <= 8
    assert pulled == list(range(64))
    puzzle_steps = sum(r.steps for r in results)
    batch_sync_steps = sum(max(r.steps for r in results if r.index // 8 == b) for b in range(8))
    assert len(step_times) <= -(-puzzle_steps // 8) + solver.max_steps
    assert len(step_times) < batch_sync_steps or puzzle_steps == 64 * results[0].steps


def test_a_live_feed_widens_for_a_burst_and_shrinks_when_quiet(trained_export: Path, test_300: dict) -> None:
    """A server's feed steps only as many slots as it has work for: a lone puzzle runs at batch 1,
    a burst doubles the batch up to max_batch (running puzzles keep their state), and it shrinks
    back when the burst has drained. Answers do not depend on any of it."""
    from trm_edge.runtime import SolverFeed

    class Widths(PassThrough):
        def step(self, reset):  # type: ignore[no-untyped-def]
            widths.append(len(reset))
            return self.inner.step(reset)

    widths: list[int] = []
    puzzles = list(test_300["inputs"][:41])
    alone = Solver.load(trained_export, backend="ort-cpu", slots=1, halt="stable:1").solve(puzzles)
    solver = Solver.load(trained_export, backend="ort-cpu", slots=16, halt="stable:1")
    solver.backend = Widths(solver.backend)
    feed = SolverFeed(solver).start()
    try:
        first = feed.submit(puzzles[0]).result(timeout=60)
        assert set(widths) == {1}
        widths.clear()
        burst = [feed.submit(p) for p in puzzles[1:]]
        results = [first] + [f.result(timeout=120) for f in burst]
    finally:
        feed.close()
    assert max(widths) == 16 and widths[-1] < 16  # grew to max_batch, shrank for the tail
    for got, want in zip(results, alone, strict=True):
        np.testing.assert_array_equal(got.answer, want.answer)
        assert got.steps == want.steps


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_feed_whose_backend_fails_fails_its_callers_and_never_hangs_later_ones(
    trained_export: Path, test_300: dict
) -> None:
    from trm_edge.runtime import SolverFeed

    class Broken(PassThrough):
        def step(self, reset):  # type: ignore[no-untyped-def]
            raise RuntimeError("device lost")

    solver = Solver.load(trained_export, backend="ort-cpu", slots=4)
    solver.backend = Broken(solver.backend)
    feed = SolverFeed(solver).start()
    with pytest.raises(RuntimeError, match="device lost"):
        feed.submit(test_300["inputs"][0]).result(timeout=30)
    with pytest.raises(TrmEdgeError, match="solver failed: device lost"):
        feed.submit(test_300["inputs"][1])
    feed.wait_for_room(1)  # returns: nothing will ever drain the queue
    feed.close()


def test_empty_stream_and_bad_puzzles(trained_export: Path) -> None:
    solver = Solver.load(trained_export, backend="ort-cpu", slots=4)
    assert list(solver.solve_stream([])) == []
    assert solver.solve([]) == []
    with pytest.raises(TrmEdgeError, match="puzzle 1: unsolvable: 5 appears twice in row 1"):
        solver.solve(["." * 81, "55" + "." * 79])
    with pytest.raises(TrmEdgeError, match=r"tokens must be 81 integers"):
        solver.solve([np.zeros(80, dtype=np.int32)])
    with pytest.raises(TrmEdgeError, match="halting policy 'sometimes' not understood"):
        Solver.load(trained_export, halt="sometimes")
    with pytest.raises(TrmEdgeError, match="backend 'gpu' is not one of"):
        Solver.load(trained_export, backend="gpu")
    with pytest.raises(TrmEdgeError, match="no calibrated halting policy"):
        Solver.load(trained_export, halt="calibrated")


def test_a_long_puzzle_stream_keeps_memory_flat(reference_exports: dict[str, Path]) -> None:
    solver = Solver.load(reference_exports["trm_att_learned_maze"], backend="ort-cpu", slots=64, halt="fixed:2")
    rng = np.random.default_rng(0)

    def puzzles(n: int):  # generated on the fly: nothing holds the whole stream
        for _ in range(n):
            yield rng.integers(1, 6, 36, dtype=np.int32)

    def peak(n: int) -> int:
        tracemalloc.start()
        count = sum(1 for _ in solver.solve_stream(puzzles(n)))
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert count == n
        return top

    # Both streams end with 16 puzzles in flight (976 and 5,008 leave 16 over 64), so both shrink
    # the batch for their tail and allocate the same buffers: only per-puzzle memory could differ.
    small, large = peak(976), peak(5_008)
    assert large < small * 1.5 + 256 * 1024, (small, large)


def test_policy_names_round_trip() -> None:
    for spec in ("model", "fixed:16", "threshold:0.9", "stable:2", "threshold:0.8,stable:1"):
        assert parse_policy(spec).name == spec
    for bad in ("fixed:0", "threshold:1.5", "stable:x", "fixed:3,stable:2", ""):
        with pytest.raises(TrmEdgeError):
            parse_policy(bad)
