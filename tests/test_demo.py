"""The main job: `trm-edge demo` on the model shipped in the package, and that model's quality."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from trm_edge.checkpoint import read_header
from trm_edge.runtime.labels import exact, load_puzzles
from trm_edge.runtime.solver import Solver
from trm_edge.shipped import shipped_checkpoint, shipped_heldout

from conftest import run_cli

# Measured with `python benchmarks/shipped_model.py` on the first 872 shipped held-out puzzles
# (fixed 16 steps: 871/872); the test checks a fixed sample of them within a margin.
SHIPPED_EXACT_FIXED = 0.999
MARGIN = 0.02


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("demo")
    proc = run_cli("demo", "--puzzles", "64", "-o", str(out))
    return out, proc.stdout


def test_demo_exports_solves_and_compares(demo_run: tuple[Path, str]) -> None:
    out, stdout = demo_run
    summary = json.loads((out / "demo.json").read_text())
    assert summary["validation_max_abs_diff"] < 1e-3  # the export matches PyTorch
    assert summary["puzzles"] == 64
    assert summary["exact_fixed_steps"] >= 0.9
    # Calibrated halting (chosen on other puzzles) keeps the accuracy and saves most of the steps.
    assert summary["exact_calibrated"] >= summary["exact_fixed_steps"] - 0.03
    assert 1 <= summary["mean_steps_calibrated"] < summary["fixed_steps"] / 2
    assert 1 <= summary["mean_steps_own_halting"] <= summary["fixed_steps"]
    assert [r["batch"] for r in summary["runtime"]] == [1, 64] == [r["batch"] for r in summary["torch"]]
    assert all(s > 1.0 for s in summary["speedup"]), summary["speedup"]  # faster than PyTorch eager
    assert (out / "demo.png").stat().st_size > 20_000 and (out / "export" / "step.onnx").is_file()
    assert "solved" in stdout and "plot:" in stdout and "exact solves" in stdout


def test_shipped_model_is_measured_on_held_out_puzzles(demo_run: tuple[Path, str]) -> None:
    out, _ = demo_run
    held_out = load_puzzles(shipped_heldout(), 81)
    assert len(held_out) == 1000
    sample = held_out.head(128)  # two full batches
    solver = Solver.load(out / "export", backend="ort-cpu", max_batch=64, halt="fixed:16")
    results = solver.solve([t for t in sample.inputs])
    answers = np.stack([r.answer for r in results])
    rate = float(exact(answers, sample.labels).mean())
    assert rate >= SHIPPED_EXACT_FIXED - MARGIN, rate
    givens = (sample.inputs > 1).sum(1)
    assert givens.min() >= 30 and givens.max() <= 40


def test_shipped_model_records_how_it_was_trained() -> None:
    config, info = read_header(shipped_checkpoint())
    assert info["command"].startswith("trm-edge train sudoku-small-cpu")
    assert info["recipe"]["name"] == "sudoku-small-cpu" and info["step"] == info["recipe"]["train"]["steps"]
    assert config.task == "sudoku" and config.arch == "trm"
    assert shipped_checkpoint().stat().st_size < 5_000_000  # a few MB in the package
