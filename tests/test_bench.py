"""`bench` tells the truth: its step is one step with every slot full whatever --puzzles is, random
tokens are said to be random, the CPU is named as doctor names it, and shipped:NAME is a checkpoint
wherever one is taken."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from trm_edge.app.commands.bench import RANDOM_TOKENS
from trm_edge.checkpoint import load_checkpoint, read_header
from trm_edge.contract.held_out import LabelledPuzzles
from trm_edge.errors import TrmEdgeError
from trm_edge.hardware import cpu_name_and_flags
from trm_edge.runtime.bench import bench_batch, full_slot_stepper
from trm_edge.runtime.solver import Solver

from conftest import TRAINED, run_cli, run_cli_in_process


def test_one_puzzle_is_timed_at_every_slot(trained_export: Path, tmp_path: Path) -> None:
    """--slots 8 --puzzles 1: the solve runs one slot, the step reported (runtime and peer) is still
    8 slots wide; without --data bench says it times random tokens; the CPU is the one hardware.py
    names; shipped:NAME is a checkpoint to compare with (here with its peers named after it), and
    bench says it is not the export's own; --json prints the figures -o writes, and nothing else."""
    out = tmp_path / "bench.json"
    proc = run_cli("bench", str(trained_export), "--backend", "ort-cpu:fp32", "--slots", "8", "--puzzles", "1",
                   "--compare-torch", "shipped:sudoku-small:eager", "--threads", "1", "-o", str(out), "--json")
    report = json.loads(out.read_text())
    assert json.loads(proc.stdout) == report  # stdout is the JSON alone: tables and notes went to stderr
    shown = proc.stderr
    row = report["rows"][0]
    assert row["step"]["width"] == 8 and row["step"]["timed_steps"] >= 1 and row["step"]["ms"] > 0
    assert row["puzzles"] == 1 and row["loop"]["mean_puzzles_per_step"] == 1  # the solve itself: one slot
    assert "timing random tokens" in shown and report["puzzles"] == {"source": "random tokens", "count": 1,
                                                                     "notice": RANDOM_TOKENS}
    assert report["environment"]["cpu"] == cpu_name_and_flags()[0]
    assert report["environment"]["cpu_flags"] == cpu_name_and_flags()[1]
    [peer] = report["torch"]
    assert peer["batch"] == 8 and peer["threads"] == 1 and peer["timed_rounds"] >= 3 and peer["exact"] is None
    assert report["against_torch"][0]["runtime_step_ms"] == row["step"]["ms"]
    # Against PyTorch the runtime's step is timed in the peers' rounds: one step of each per round.
    assert row["step"]["timed_steps"] == peer["timed_rounds"] and "interleaved" in row["step"]["timed_as"]
    assert "is not the checkpoint this export was made from" in shown


def test_the_step_runs_at_full_width_and_the_loop_at_its_own(trained_export: Path) -> None:
    """Every backend step bench_batch runs, seen at the backend: the timed ones at the solver's
    width, the solve's at the one slot its one puzzle needs."""
    solver = Solver.load(trained_export, backend="ort-cpu", precision="fp32", slots=8)
    widths: list[int] = []
    step = solver.backend.step

    def seen(reset: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        widths.append(len(reset))
        return step(reset)

    solver.backend.step = seen  # type: ignore[method-assign]  # the real step, counted
    puzzle = (np.load(TRAINED / "test_300.npz")["puzzles"][:1] + 1).astype(np.int32)
    row = bench_batch(solver, LabelledPuzzles(puzzle, None, np.zeros(1, dtype=np.int32)))
    assert row.step["width"] == 8 and widths.count(8) > row.step["timed_steps"]  # a warm-up step, then the timed
    assert row.loop["steps"] >= 1 and widths[-row.loop["steps"]:] == [1] * row.loop["steps"]


def test_shipped_names_are_checkpoints(tmp_path: Path) -> None:
    model = load_checkpoint("shipped:sudoku-small")
    assert model.config == read_header("shipped:sudoku-small")[0] and model.config.task == "sudoku"
    with pytest.raises(TrmEdgeError, match="no shipped model 'nope'") as error:
        load_checkpoint("shipped:nope")
    assert "\n" not in str(error.value)
    # bench refuses an unknown one in one line, before opening the export (here no export at all)
    proc = run_cli_in_process("bench", str(tmp_path), "--compare-torch", "shipped:nope")
    assert proc.returncode == 2 and "no shipped model 'nope'" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    proc = run_cli_in_process("bench", str(tmp_path), "--compare-torch", str(tmp_path / "none.safetensors"))
    assert proc.returncode == 2 and "--compare-torch" in proc.stderr and "no checkpoint file" in proc.stderr
    proc = run_cli_in_process("bench", str(tmp_path), "--compare-torch", "shipped:nope:eager,compile")
    assert proc.returncode == 2 and "no shipped model 'nope'" in proc.stderr  # the peers after the last ':'
    proc = run_cli_in_process("bench", str(tmp_path), "-o", str(tmp_path / "figures.csv"))
    assert proc.returncode == 2 and ".json (the figures) or .png (a plot)" in proc.stderr


def test_backend_lists_and_all() -> None:
    """--backend takes one BACKEND[:PRECISION], a comma-separated list of them, or all (the registry's
    every backend x precision)."""
    from trm_edge.app.commands.bench import backend_specs
    from trm_edge.runtime.backends.registry import matrix

    assert backend_specs("auto") == [("auto", "auto")]
    assert backend_specs("openvino:bf16, ort-cpu:fp32,int8") == [("openvino", "bf16"), ("ort-cpu", "fp32"),
                                                                 ("auto", "int8")]
    assert backend_specs("all") == matrix() and len(matrix()) > 2


def test_the_runtime_step_is_timed_in_the_peers_rounds(trained_export: Path) -> None:
    """bench --compare-torch, the demo and step_peers.py time the runtime's step through one function
    (`interleaved_steps`): each round runs the runtime's step and each peer's once, in turn, none
    with a warm-up step of its own; the runtime's one untimed step is at the full width, from the
    initial state, before any round."""
    from trm_edge.app.torch_eval import RUNTIME, interleaved_steps

    solver = Solver.load(trained_export, backend="ort-cpu", precision="fp32", slots=8)
    seen: list[str] = []
    step = solver.backend.step

    def counted(reset: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        seen.append(f"runtime {len(reset)} {'reset' if reset.all() else 'carry'}")
        return step(reset)

    solver.backend.step = counted  # type: ignore[method-assign]  # the real step, counted

    class Fake:  # a PeerModel's face towards the timing: a stepper per shape
        def __init__(self, name: str) -> None:
            self.name = name

        def stepper(self, tokens: np.ndarray, ids: np.ndarray) -> Callable[[], None]:
            return lambda: seen.append(f"{self.name} {len(tokens)}")

    tokens = (np.load(TRAINED / "test_300.npz")["puzzles"][:3] + 1).astype(np.int32)
    ids = np.zeros(3, dtype=np.int32)
    runtime = {RUNTIME: full_slot_stepper(solver.backend, tokens, ids, 8)}
    rows = np.resize(np.arange(3), 8)
    times = interleaved_steps({"a": Fake("a"), "b": Fake("b")}, tokens[rows], ids[rows], 3,  # type: ignore[dict-item]
                              runtime=runtime)
    assert {name: len(values) for name, values in times.items()} == {RUNTIME: 3, "a": 3, "b": 3}
    # The runtime's untimed step, each peer's untimed step, then the rounds in turn.
    assert seen == ["runtime 8 reset", "a 8", "b 8"] + ["runtime 8 carry", "a 8", "b 8"] * 3


def test_peers_and_bench_count_the_cores_this_process_may_use(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under taskset or a cpuset the peers run (and bench reports) the cores allowed, not the machine's."""
    import os

    from trm_edge.app.torch_eval import peer_threads

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3}, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert peer_threads(None) == 1 and peer_threads(4) == 4


def test_the_matrix_shows_the_step_it_times() -> None:
    """bench --backend all spends its rows' time on the full-slot step: the table shows it."""
    from rich.console import Console

    from trm_edge.app.commands.bench import matrix_table

    row = {"backend": "ort-cpu", "format": "onnx", "precision": "fp32", "status": "ok", "batch": 8,
           "step": {"ms": 12.345}, "exact": 0.5, "verified": 0.5, "mean_steps": 2.0,
           "latency_ms": {"p50": 1.0, "p90": 2.0, "p99": 3.0}, "puzzles_per_s": 10.0}
    refused = {"backend": "openvino", "format": "onnx", "precision": "bf16", "status": "unavailable",
               "reason": "no bf16"}
    console = Console(width=250, record=True)
    console.print(matrix_table([row, refused], "EXPORT"))
    shown = console.export_text()
    assert "every slot full" in shown and "12.35" in shown and "no bf16" in shown
