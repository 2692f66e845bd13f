"""Choosing a halting policy on held-out data: accuracy against mean steps, per policy.

Runs every held-out puzzle for max_steps (recording each step's answer, halting score and, where
the task can verify answers, whether each answer verifies), then replays each candidate policy on
the recording (halting.simulate: the rule the solver applies live).

What counts as right, by what the data offers: the labels; else, for a task that verifies its
answers (Sudoku, maze), verification; else agreement with the model's own max-steps answer (so
calibration needs no labels at all).

The choice must hold on puzzles it did not see: a quarter of the data is held out, the policy is
chosen on the rest as the one with the fewest mean steps whose loss against fixed max steps, plus
one standard error of that (paired) loss, stays within `max_loss` (0.5 points); the held-out
figure is reported beside it. The chosen policy is stored in trm_edge.json.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trm_edge.contract.export_dir import read_metadata, refuse_if_replaced, write_metadata
from trm_edge.contract.halting_policy import HaltPolicy
from trm_edge.contract.held_out import LabelledPuzzles, exact
from trm_edge.contract.metadata import ExportMetadata
from trm_edge.runtime.halting import halt_score, simulate
from trm_edge.runtime.solver import Solver

THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999)
STABLE = (1, 2, 3, 4)
VERIFIED_STABLE = (1, 2, 3, 4, 6, 8)
VERIFIED_CAPS = (3, 4, 5, 6, 8, 10, 12, 14, 15)  # give up on a puzzle unverified after this many steps
HOLD_OUT_EVERY = 4  # every 4th puzzle is held out of the choice...
HOLD_OUT_MIN_PUZZLES = 40  # ...when there are enough to split


def candidate_policies(verifiable: bool, max_steps: int) -> list[HaltPolicy]:
    policies = [HaltPolicy(fixed_steps=max_steps), HaltPolicy(model_rule=True)]
    policies += [HaltPolicy(threshold=p) for p in THRESHOLDS]
    policies += [HaltPolicy(stable_steps=k) for k in STABLE]
    policies += [HaltPolicy(threshold=p, stable_steps=k) for p in THRESHOLDS for k in STABLE]
    if verifiable:
        policies += [HaltPolicy(verified=True)]
        policies += [HaltPolicy(verified=True, stable_steps=k) for k in VERIFIED_STABLE]
        policies += [HaltPolicy(verified=True, threshold=p) for p in (0.9, 0.99, 0.999)]
        policies += [HaltPolicy(verified=True, step_cap=n) for n in VERIFIED_CAPS if n < max_steps]
        policies += [HaltPolicy(verified=True, stable_steps=k, step_cap=n) for k in (2, 4) for n in VERIFIED_CAPS
                     if n < max_steps]
    return policies


@dataclass
class Recording:
    answers: np.ndarray  # (steps, N, seq_len)
    scores: np.ndarray  # (steps, N)
    verified: np.ndarray | None  # (steps, N), None when the task cannot verify


def record(
    solver: Solver, puzzles: LabelledPuzzles, steps: int, progress: Callable[[int], None] | None = None
) -> Recording:
    """Every puzzle run `steps` steps from its initial state, in batches, all outputs kept."""
    backend = solver.backend
    b = backend.width
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
    verified = None
    if solver.verifier is not None:
        flat = solver.verifier.verify(np.tile(puzzles.inputs, (steps, 1)), answers.reshape(steps * n, -1))
        verified = flat.reshape(steps, n)
    return Recording(answers, scores, verified)


def correctness(recording: Recording, labels: np.ndarray | None) -> tuple[np.ndarray, str]:
    """(steps, N) whether each recorded answer counts as right, and by what measure."""
    if labels is not None:
        return np.stack([exact(a, labels) for a in recording.answers]), "labels"
    if recording.verified is not None:
        return recording.verified, "verification"
    return (recording.answers == recording.answers[-1]).all(axis=-1), "agreement with fixed max steps"


@dataclass
class Replay:
    """Every candidate policy replayed on one recording, scored by `correct`."""

    recording: Recording
    correct: np.ndarray  # (steps, N)
    scored_by: str
    halts: dict[str, np.ndarray]  # policy name -> (N,) 1-based step it halts at

    def row(self, name: str, idx: np.ndarray) -> dict[str, Any]:
        """One policy's figures on the puzzles `idx`, with its loss against fixed max steps."""
        halted_at, correct = self.halts[name][idx], self.correct
        right = correct[halted_at - 1, idx]
        diff = correct[-1, idx].astype(np.float64) - right  # paired: + where fixed is right and the policy not
        out: dict[str, Any] = {
            "policy": name,
            "exact": float(right.mean()),
            "mean_steps": float(halted_at.mean()),
            "loss": float(diff.mean()),
            "loss_se": float(diff.std(ddof=1) / np.sqrt(len(idx))) if len(idx) > 1 else 0.0,
        }
        if self.recording.verified is not None:
            out["verified"] = float(self.recording.verified[halted_at - 1, idx].mean())
        return out

    def rows(self, idx: np.ndarray) -> list[dict[str, Any]]:
        return [self.row(name, idx) for name in self.halts]

    def summary(self) -> dict[str, Any]:
        """Accuracy by fixed step and every policy's figures, over all recorded puzzles."""
        everyone = np.arange(self.correct.shape[1])
        out: dict[str, Any] = {
            "scored_by": self.scored_by,
            "exact_fixed": float(self.correct[-1].mean()),
            "exact_by_step": [float(c.mean()) for c in self.correct],
            "policies": self.rows(everyone),
        }
        if self.recording.verified is not None:
            out["verified_by_step"] = [float(v.mean()) for v in self.recording.verified]
        return out


def replay(
    recording: Recording, labels: np.ndarray | None, max_steps: int, policies: list[HaltPolicy] | None = None
) -> Replay:
    policies = policies or candidate_policies(recording.verified is not None, max_steps)
    correct, scored_by = correctness(recording, labels)
    halts = {p.name: simulate(p, recording.answers, recording.scores, max_steps, recording.verified) for p in policies}
    return Replay(recording, correct, scored_by, halts)


def evaluate(recording: Recording, labels: np.ndarray | None, max_steps: int) -> dict[str, Any]:
    """Accuracy by fixed step, and exact, mean steps and verified share for every candidate policy."""
    return replay(recording, labels, max_steps).summary()


def choose(rows: list[dict[str, Any]], max_loss: float) -> dict[str, Any]:
    """Fewest mean steps among policies whose loss against fixed max steps, plus one standard
    error, is within max_loss (fixed max steps itself always qualifies)."""
    good = [r for r in rows if r["loss"] + r["loss_se"] <= max_loss + 1e-12]
    return min(good, key=lambda r: (r["mean_steps"], -r["exact"]))


def split(count: int) -> tuple[np.ndarray, np.ndarray]:
    """(puzzles to choose on, puzzles held out to check the choice); no hold-out when few."""
    idx = np.arange(count)
    if count < HOLD_OUT_MIN_PUZZLES:
        return idx, idx[:0]
    held = idx % HOLD_OUT_EVERY == HOLD_OUT_EVERY - 1
    return idx[~held], idx[held]


def calibrate(
    solver: Solver,
    puzzles: LabelledPuzzles,
    max_loss: float = 0.005,
    progress: Callable[[int], None] | None = None,
    recording: Recording | None = None,
) -> dict[str, Any]:
    """Record (or reuse `recording` of these puzzles at the solver's max steps) and choose."""
    steps = solver.max_steps
    recording = recording if recording is not None else record(solver, puzzles, steps, progress)
    replayed = replay(recording, puzzles.labels, steps)
    fit, held = split(len(puzzles))
    chosen = choose(replayed.rows(fit), max_loss)
    result: dict[str, Any] = {
        "puzzles": len(puzzles),
        "max_steps": steps,
        "max_loss": max_loss,
        "chosen": chosen | {"puzzles": len(fit)},
        **replayed.summary(),
    }
    if len(held):
        check = replayed.row(chosen["policy"], held)
        result["held_out"] = check | {"puzzles": len(held), "exact_fixed": float(replayed.correct[-1, held].mean())}
    return result


def describe_choice(result: dict[str, Any]) -> str:
    """One line (rich markup): the chosen default, on the puzzles it was chosen on and held out."""
    chosen = result["chosen"]
    line = (
        f"default halting is now [bold]{chosen['policy']}[/]: {_pct(chosen['exact'])} exact at "
        f"{chosen['mean_steps']:.2f} mean steps on the {chosen['puzzles']} puzzles it was chosen on"
    )
    held = result.get("held_out")
    if held:
        line += (
            f"; on the {held['puzzles']} held out: {_pct(held['exact'])} at {held['mean_steps']:.2f} steps "
            f"(fixed {result['max_steps']}: {_pct(held['exact_fixed'])})"
        )
    return line + f" [dim](right = by {result['scored_by']})[/]"


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def store(export_dir: str | Path, calibration: dict[str, Any], data_name: str, loaded: ExportMetadata) -> None:
    """Make the chosen policy the export's default ('auto') and keep the curve beside it, if the
    export is still the one `loaded` (the metadata the calibrated solver read)."""
    meta = read_metadata(export_dir)
    refuse_if_replaced(export_dir, loaded, meta, "calibrating", "calibrate")
    write_metadata(export_dir, meta.with_halting(calibration["chosen"]["policy"], {"data": data_name, **calibration}))
