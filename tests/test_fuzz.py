"""Property-based fuzzing of everything that reads outside input (the targets in tests/fuzzing.py):
any input gives a result or a TrmEdgeError (a one-line message for a person), never another
exception.

In CI every target runs with its seed fixed by its name (the `ci` profile): every run of a commit
tries the same examples, and the end of the run prints how many and their hash. Finding new cases is
`tests/fuzz_long.py`'s job; what it finds is saved in tests/fixtures/fuzz_findings and replayed
here as regular tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from trm_edge.errors import TrmEdgeError
from trm_edge.runtime.solver import Solver

from fuzzing import FINDINGS, TARGETS, FuzzContext, Ledger, load_finding, run_target


@pytest.fixture(scope="module")
def context(reference_exports: dict[str, Path]) -> FuzzContext:
    return FuzzContext(reference_exports["trm_att_learned_maze"])


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_fuzz_target(name: str, context: FuzzContext) -> None:
    run_target(name, context, "ci")


PROBE = """
import sys
sys.path.insert(0, {tests!r})
if {preload}:  # other tests' imports, and a different order, must not change the examples
    import trm_edge.runtime.solver, trm_edge.model, trm_edge.tasks.arc_vote
from fuzzing import FuzzContext, Ledger, run_target
ledger = Ledger()
for name in ("arc_codec", "sudoku_codec"):
    run_target(name, FuzzContext(None), ledger=ledger, max_examples=40)
print(ledger.digest())
"""


def _digest_in_a_new_process(hash_seed: str, preload: bool) -> str:
    code = PROBE.format(tests=str(Path(__file__).parent), preload=preload)
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True).stdout.strip()


def test_every_process_draws_the_same_examples(context: FuzzContext) -> None:
    """What makes CI deterministic: the same examples whatever the hash seed and whatever the
    process imported before; another seed draws others."""
    first = _digest_in_a_new_process("1", preload=False)
    assert _digest_in_a_new_process("2", preload=True) == first
    here, other = Ledger(), Ledger()
    for name in ("arc_codec", "sudoku_codec"):
        run_target(name, context, ledger=here, max_examples=40)
        run_target(name, context, ledger=other, max_examples=40, rng_seed=12345)
    assert here.digest() == first != other.digest()


def test_the_long_runner_runs_through(tmp_path: Path) -> None:
    """tests/fuzz_long.py, for a second with few examples: it runs to its report and exits 0 (no finding)."""
    out = tmp_path / "fuzz_long.json"
    proc = subprocess.run([sys.executable, str(Path(__file__).parent / "fuzz_long.py"), "--minutes", "0.02",
                           "--examples", "5", "--findings", str(tmp_path / "findings"), "--json", str(out)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert json.loads(out.read_text())["cpu"]


def test_saved_findings(context: FuzzContext) -> None:
    """Every example a long fuzz run once failed on (tests/fuzz_long.py saved them) now passes."""
    for path in sorted(FINDINGS.glob("*.json")):
        name, example = load_finding(path)
        try:
            TARGETS[name].check(context, example)
        except Exception as exc:
            raise AssertionError(f"{path.name} fails again: {type(exc).__name__}: {exc}") from exc


def test_metadata_that_claims_puzzle_identifiers_the_graph_lacks(context: FuzzContext, tmp_path: Path) -> None:
    """Found by the metadata fuzzer: a trm_edge.json saying the model takes puzzle identifiers when
    its graph has no such input fails at load with a clear error, not inside ONNX Runtime mid-solve."""
    source = context.maze_export
    assert source is not None
    for graph in ("init.onnx", "step.onnx"):
        (tmp_path / graph).symlink_to(source / graph)
    meta = json.loads(json.dumps(context.metadata))
    meta["model"]["uses_puzzle_identifiers"] = True
    (tmp_path / "trm_edge.json").write_text(json.dumps(meta))
    with pytest.raises(TrmEdgeError, match="puzzle_identifiers"):
        Solver.load(tmp_path, backend="ort-cpu", slots=2).solve([np.full(36, 2, dtype=np.int32)])


def test_a_saved_finding_reads_back_as_the_same_example(tmp_path: Path) -> None:
    from fuzzing import save_finding

    objects = np.empty((2, 1), dtype=np.object_)
    objects[0, 0], objects[1, 0] = b"#S\x00", 7
    example = ({"inputs": np.arange(6, dtype=np.int8).reshape(2, 3)}, (("model", 0), float("nan")), objects,
               [None, True, 2**70, "²"], b"\xff")
    path = save_finding("npz_reader", example, ValueError("boom\nsecond line"), tmp_path)
    assert json.loads(path.read_text())["error"] == "ValueError: boom"
    name, back = load_finding(path)
    assert name == "npz_reader"
    np.testing.assert_array_equal(back[0]["inputs"], example[0]["inputs"])
    assert back[0]["inputs"].dtype == np.int8 and back[1][0] == ("model", 0) and np.isnan(back[1][1])
    assert back[2].shape == (2, 1) and back[2][0, 0] == b"#S\x00" and back[2][1, 0] == 7
    assert back[3:] == ([None, True, 2**70, "²"], b"\xff")
