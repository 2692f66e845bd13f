"""Answers you can trust by default: verified halting in the runtime, as users run it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from trm_edge.contract.halting_policy import LABEL_FREE_DEFAULT
from trm_edge.errors import TrmEdgeError
from trm_edge.runtime.solver import Solver

from conftest import TRAINED, run_cli, run_cli_in_process

# Row 1 holds 1-8 and needs a 9 in column 9, which already has one: no solution, but no two equal
# givens either, so the codec accepts it and no answer can ever verify.
UNSOLVABLE = "12345678." + "." * 18 + "........9" + "." * 45


# Mean steps with every default on test_300, by what auto may run (Zen 4, benchmarks/threshold_figures.py):
# ONNX Runtime fp32 2.59, OpenVINO fp32 2.62, OpenVINO bf16 2.60 (exact 92.3%, 92.3%, 93.3%; the
# official loop: 16 steps, 88.7%). The bar leaves 0.18 steps (7%) over the slowest to halt.
DEFAULT_MEAN_STEPS_BAR = 2.8


@pytest.mark.precision_dependent
def test_default_halting_on_the_trained_fixture_beats_the_official_loop(trained_export: Path, tmp_path: Path) -> None:
    """Exported without --data, solved with every default: at least the official 16-step accuracy
    at a fraction of the steps, and every answer marked verified is right."""
    official = json.loads((TRAINED / "official_eval_test_300.json").read_text())
    out = tmp_path / "answers.npz"
    run_cli_in_process("solve", str(trained_export), str(TRAINED / "test_300.npz"), "-o", str(out), check=True)
    data, answers = np.load(TRAINED / "test_300.npz"), np.load(out)
    right = (answers["answers"] == data["solutions"] + 1).all(axis=1)
    verified = answers["verified"]
    assert set(np.unique(verified)) <= {0, 1}
    assert right.mean() >= official["exact_fixed"], right.mean()  # 3.6-4.6 points of margin (figures above)
    assert answers["steps"].mean() <= DEFAULT_MEAN_STEPS_BAR, answers["steps"].mean()
    assert right[verified == 1].all()  # a verified answer is the solution
    assert (verified == 1).sum() == right.sum()


def test_a_puzzle_that_never_verifies_stops_and_says_so(trained_export: Path) -> None:
    strict = Solver.load(trained_export, backend="ort-cpu", halt="verified,max")
    result = strict.solve([UNSOLVABLE])[0]
    assert result.verified is False and result.steps == strict.max_steps == 16
    default = Solver.load(trained_export, backend="ort-cpu").solve([UNSOLVABLE])[0]
    assert default.verified is False and default.steps <= strict.max_steps


def test_verified_on_a_task_that_cannot_verify_is_a_one_line_error(reference_exports: dict[str, Path]) -> None:
    arc = reference_exports["trm_att_arc"]
    with pytest.raises(TrmEdgeError, match="cannot verify its answers") as err:
        Solver.load(arc, backend="ort-cpu", halt="verified")
    assert "stable:K" in str(err.value) and "calibrated" in str(err.value)
    proc = run_cli("bench", str(arc), "--halt", "verified", "--slots", "1", "--puzzles", "1", check=False)
    assert proc.returncode == 2 and "cannot verify" in proc.stderr and "Traceback" not in proc.stderr
    # With nothing calibrated, auto falls back on the label-free default, and results say they are unverified.
    solver = Solver.load(arc, backend="ort-cpu", slots=2)
    assert solver.policy.name == LABEL_FREE_DEFAULT
    results = solver.solve([np.full(solver.seq_len, 2, dtype=np.int32)])
    assert results[0].verified is None and results[0].verified_code == -1
