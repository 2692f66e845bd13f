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

# The acceptance bar for the shipped model with every default (verified halting) on its held-out
# puzzles; `python benchmarks/shipped_model.py` measures all 1000 (and the hard lists).
SHIPPED_EXACT_DEFAULT = 0.995


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
    # The default halts each puzzle at its first verified answer: no accuracy lost, most steps saved,
    # and every verified answer is right.
    assert summary["default_policy"].startswith("verified")
    assert summary["exact_default"] >= summary["exact_fixed_steps"]
    assert summary["verified_default"] == summary["exact_default"]
    assert 1 <= summary["mean_steps_default"] < summary["fixed_steps"] / 4
    assert 1 <= summary["mean_steps_own_halting"] <= summary["fixed_steps"]
    assert [r["batch"] for r in summary["runtime"]] == [1, 64] == [r["batch"] for r in summary["torch"]]
    assert all(s > 1.0 for s in summary["speedup"]), summary["speedup"]  # faster than PyTorch eager
    assert (out / "demo.png").stat().st_size > 20_000 and (out / "export" / "step.onnx").is_file()
    assert "verified, solved" in stdout and "plot:" in stdout and "verified answers" in stdout
    # Test-time versions never lose a puzzle the plain version solved (a verified answer is right).
    versions = summary["versions"]
    assert versions["exact"] >= summary["exact_default"] and versions["verified"] == versions["exact"]
    assert "test-time versions" in stdout
    assert versions["hard_solved"] == versions["hard_puzzles"] == 6 and "6 of 6" in stdout


def test_shipped_model_with_defaults_on_its_held_out_puzzles(demo_run: tuple[Path, str]) -> None:
    out, _ = demo_run
    held_out = load_puzzles(shipped_heldout(), 81)
    assert len(held_out) == 1000
    givens = (held_out.inputs > 1).sum(1)
    assert givens.min() >= 30 and givens.max() <= 40
    solver = Solver.load(out / "export", backend="ort-cpu", max_batch=64)  # every default
    results = solver.solve(list(held_out.inputs))
    right = exact(np.stack([r.answer for r in results]), held_out.labels)
    assert right.mean() >= SHIPPED_EXACT_DEFAULT, right.mean()
    verified = np.array([r.verified for r in results])
    assert right[verified].all() and verified.sum() == right.sum()


def test_shipped_model_records_how_it_was_trained() -> None:
    config, info = read_header(shipped_checkpoint())
    assert info["command"].startswith("trm-edge train sudoku-small-cpu")
    assert info["recipe"]["name"] == "sudoku-small-cpu" and info["step"] == info["recipe"]["train"]["steps"]
    assert config.task == "sudoku" and config.arch == "trm"
    assert shipped_checkpoint().stat().st_size < 5_000_000  # a few MB in the package
