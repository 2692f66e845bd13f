"""Choosing a halting policy on held-out data: accuracy against mean steps, per policy.

Runs every held-out puzzle for max_steps (recording each step's answer and halting score),
then replays each candidate policy on the recording (halting.simulate: the rule the solver
applies live). The default is the policy with the fewest mean steps whose exact accuracy stays
within `max_loss` (0.5 points) of running all max_steps; it is stored in trm_edge.json.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trm_edge.runtime.export_dir import read_metadata, write_metadata
from trm_edge.runtime.halting import HaltPolicy, halt_score, simulate
from trm_edge.runtime.labels import LabelledPuzzles, exact
from trm_edge.runtime.solver import Solver

THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999)
STABLE = (1, 2, 3, 4)


def candidate_policies() -> list[HaltPolicy]:
    policies = [HaltPolicy(model_rule=True)]
    policies += [HaltPolicy(threshold=p) for p in THRESHOLDS]
    policies += [HaltPolicy(stable_steps=k) for k in STABLE]
    policies += [HaltPolicy(threshold=p, stable_steps=k) for p in THRESHOLDS for k in STABLE]
    return policies


@dataclass
class Recording:
    answers: np.ndarray  # (steps, N, seq_len)
    scores: np.ndarray  # (steps, N)


def record(solver: Solver, puzzles: LabelledPuzzles, steps: int, progress: Any = None) -> Recording:
    """Every puzzle run `steps` steps from its initial state, in batches, all outputs kept."""
    backend = solver.backend
    b = backend.batch
    n = len(puzzles)
    answers = np.zeros((steps, n, puzzles.inputs.shape[1]), dtype=np.int32)
    scores = np.zeros((steps, n), dtype=np.float32)
    for start in range(0, n, b):
        chunk = slice(start, min(start + b, n))
        size = chunk.stop - chunk.start
        tokens = np.zeros((b, puzzles.inputs.shape[1]), dtype=np.int32)
        ids = np.zeros(b, dtype=np.int32)
        tokens[:size], ids[:size] = puzzles.inputs[chunk], puzzles.puzzle_identifiers[chunk]
        backend.set_inputs(tokens, ids)
        reset = np.ones(b, dtype=bool)
        for t in range(steps):
            answer, q_halt, q_cont = backend.step(reset)
            reset = np.zeros(b, dtype=bool)
            answers[t, chunk] = answer[:size]
            scores[t, chunk] = halt_score(solver.rule, q_halt, q_cont)[:size]
        if progress is not None:
            progress(size)
    return Recording(answers, scores)


def evaluate(recording: Recording, labels: np.ndarray, max_steps: int) -> dict[str, Any]:
    """Accuracy by fixed step, and (exact, mean steps) for every candidate policy."""
    by_step = [float(exact(recording.answers[t], labels).mean()) for t in range(recording.answers.shape[0])]
    rows = []
    idx = np.arange(labels.shape[0])
    for policy in candidate_policies():
        halted_at = simulate(policy, recording.answers, recording.scores, max_steps)
        final = recording.answers[halted_at - 1, idx]
        rows.append(
            {"policy": policy.name, "exact": float(exact(final, labels).mean()), "mean_steps": float(halted_at.mean())}
        )
    return {"exact_by_step": by_step, "policies": rows}


def choose(evaluation: dict[str, Any], max_loss: float) -> dict[str, Any]:
    """Fewest mean steps among policies within max_loss of the fixed-max-steps accuracy."""
    fixed = evaluation["exact_by_step"][-1]
    good = [r for r in evaluation["policies"] if r["exact"] >= fixed - max_loss - 1e-12]
    return min(good, key=lambda r: (r["mean_steps"], -r["exact"]))


def calibrate(
    solver: Solver, puzzles: LabelledPuzzles, max_loss: float = 0.005, progress: Any = None
) -> dict[str, Any]:
    if puzzles.labels is None:
        from trm_edge.errors import TrmEdgeError

        raise TrmEdgeError("calibration needs the answers: the data must have 'labels' (or 'solutions')")
    steps = solver.max_steps
    recording = record(solver, puzzles, steps, progress)
    evaluation = evaluate(recording, puzzles.labels, steps)
    chosen = choose(evaluation, max_loss)
    return {
        "puzzles": len(puzzles),
        "max_steps": steps,
        "max_loss": max_loss,
        "exact_fixed": evaluation["exact_by_step"][-1],
        "chosen": chosen,
        **evaluation,
    }


def store(export_dir: str | Path, calibration: dict[str, Any], data_name: str) -> None:
    """Make the chosen policy the export's default ('auto') and keep the curve beside it."""
    meta = read_metadata(export_dir)
    meta["halting"]["policy"] = calibration["chosen"]["policy"]
    meta["halting"]["calibration"] = {"data": data_name, **calibration}
    write_metadata(export_dir, meta)
