"""`bench` tells the truth: its step is one step with every slot full whatever --puzzles is, random
tokens are said to be random, the CPU is named as doctor names it, and shipped:NAME is a checkpoint
wherever one is taken."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from trm_edge.app.commands.bench import RANDOM_TOKENS
from trm_edge.checkpoint import load_checkpoint, read_header
from trm_edge.contract.held_out import LabelledPuzzles
from trm_edge.errors import TrmEdgeError
from trm_edge.hardware import cpu_name_and_flags
from trm_edge.runtime.bench import bench_batch
from trm_edge.runtime.solver import Solver

from conftest import TRAINED, run_cli, run_cli_in_process


def test_one_puzzle_is_timed_at_every_slot(trained_export: Path, tmp_path: Path) -> None:
    """--batch 8 --puzzles 1: the solve runs one slot, the step reported (runtime and peer) is still
    8 slots wide; without --data bench says it times random tokens; the CPU is the one hardware.py
    names; shipped:NAME is a checkpoint to compare with, and bench says it is not the export's own."""
    out = tmp_path / "bench.json"
    shown = run_cli("bench", str(trained_export), "--backend", "ort-cpu", "--precision", "fp32", "--batch", "8",
                    "--puzzles", "1", "--compare-torch", "shipped:sudoku-small", "--torch-peers", "eager",
                    "--threads", "1", "--json", str(out)).stdout
    report = json.loads(out.read_text())
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
    assert "is not the checkpoint this export was made from" in shown


def test_the_step_runs_at_full_width_and_the_loop_at_its_own(trained_export: Path) -> None:
    """Every backend step bench_batch runs, seen at the backend: the timed ones at the solver's
    width, the solve's at the one slot its one puzzle needs."""
    solver = Solver.load(trained_export, backend="ort-cpu", precision="fp32", max_batch=8)
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
