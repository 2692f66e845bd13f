"""Checking a lower inference precision before trusting it.

A backend that lowers the precision inside the compiled model (OpenVINO's bf16 on a CPU that has
it) runs a graph that export validated only in float32. Before such a backend answers anything,
it runs the export's own validation puzzles (validation.npz: real held-out puzzles when the export
was given `--data`, else the random tokens validation used) for the validation's looped steps, and
so does a float32 twin of the same backend. The lower precision is trusted only when

- step 1's halting logits agree within a tolerance relative to their scale,
- the answers after the looped steps agree on enough cells: 99% on real puzzles; 90% on random
  tokens, where a trained model's answers are chaotic and the bar catches a broken graph only;
- where the task verifies its answers, the lower precision verifies every puzzle float32 solved,
  but for a few (`spared`: 5% of the puzzles, at least one). A puzzle float32 solved just at the
  last looped step may take the lower precision a step more, and a verified answer is right in any
  precision (a Sudoku with several solutions may verify with another of them, so cells are not
  compared there), so what a lower precision can cost such a task is steps, never a wrong answer;
  a broken graph verifies next to nothing. The puzzles still unsolved are still searching, in any
  precision, and a rounding sends that search elsewhere: over all puzzles the 90% bar applies then.
  Measured on the shipped Sudoku model's 32 generated validation Sudokus (22-40 givens, 4 steps),
  OpenVINO bf16 with every product in bf16: 96.0% of cells overall; of float32's 28 solved, 27
  verified alike (4 of them with another of their solutions), 1 not yet; on 1000 held-out puzzles
  with every default 99.6% exact against float32's 99.7%, and 89.6% against 89.8% on 1000 with 22-28 givens,
  no verified answer wrong (AMD EPYC Zen 4).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trm_edge.contract.metadata import ExportMetadata
from trm_edge.contract.validation_file import random_puzzles, read_validation_puzzles

AGREEMENT = {True: 0.99, False: 0.90}  # real puzzles / random tokens
SPARED = 0.05  # of the puzzles, at least one: may verify later (or differ most) in the lower precision
Q_HALT_RTOL = 0.25  # of max(1, |q_halt|): bf16 keeps ~3 significant digits, compounded over a step
DEFAULT_STEPS = 4


@dataclass(frozen=True)
class PrecisionCheck:
    precision: str
    puzzles: int
    steps: int
    real_puzzles: bool
    q_halt_diff: float
    q_halt_limit: float
    agreement: float
    agreement_limit: float
    verified: tuple[int, int] | None  # (at this precision, in float32), where the task verifies
    # Of the puzzles float32 solved, how many this precision verified too (where the task verifies).
    solved_alike: int | None = None
    reference: str = "fp32"  # what it was held to: fp32, or the int8 step as validated for int8+bf16

    @property
    def passed(self) -> bool:
        solved_ok = (self.verified is None or self.solved_alike is None
                     or self.solved_alike >= self.verified[1] - spared(self.puzzles))
        return self.q_halt_diff <= self.q_halt_limit and self.agreement >= self.agreement_limit and solved_ok

    def summary(self) -> str:
        what = "real puzzles" if self.real_puzzles else "random tokens"
        text = (f"{self.precision} against {self.reference} on {self.puzzles} {what}, {self.steps} steps: answers "
                f"agree on {self.agreement:.1%} of cells (needs {self.agreement_limit:.0%})")
        text += f", step-1 q_halt differs by {self.q_halt_diff:.3g} (limit {self.q_halt_limit:.3g})"
        if self.verified is not None:
            low, ref = self.verified
            text += (f", {low} verified ({ref} in {self.reference}, {self.solved_alike} of them here too; needs all "
                     f"but {spared(self.puzzles)})")
        return text


def _computes_in(backend: Any, meta: ExportMetadata) -> str:
    float_precision = getattr(backend, "float_precision", None)
    return getattr(backend, "precision", meta.precision) + (f"+{float_precision}" if float_precision else "")


def spared(puzzles: int) -> int:
    """How many puzzles a lower precision may solve later than float32 (see the module's rule)."""
    return max(1, math.ceil(SPARED * puzzles))


def looped_answers(backend: Any, tokens: np.ndarray, ids: np.ndarray, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """(step-1 q_halt, answers after `steps`) of a resizable backend on these puzzles; its width
    is restored afterwards (empty slots)."""
    width = backend.width
    backend.resize(len(tokens))
    try:
        backend.set_inputs(tokens, ids)
        answer, q_halt, _ = backend.step(np.ones(len(tokens), dtype=bool))
        first = q_halt.copy()
        for _ in range(steps - 1):
            answer, _, _ = backend.step(np.zeros(len(tokens), dtype=bool))
        return first, answer.copy()
    finally:
        backend.resize(width)


def check_precision(candidate: Any, fp32: Any, export_dir: Path, meta: ExportMetadata, verifier: Any = None,
                    answers: dict[Any, tuple[np.ndarray, np.ndarray]] | None = None) -> PrecisionCheck:
    """Run the export's validation puzzles on `candidate` and on its float32 twin `fp32` (or the
    reference it is held to); `answers` keeps each backend's looped answers for the next check (auto
    holds three OpenVINO candidates to one fp32 reference)."""
    # A fixed-batch export's validation puzzles are as many as its batch (the rows its graphs take).
    tokens, ids, real = read_validation_puzzles(export_dir, meta) or random_puzzles(meta, meta.batch_size or 4)
    validation = meta.validation or {}
    steps = int(validation.get("steps") or DEFAULT_STEPS)
    answers = {} if answers is None else answers
    for backend in (candidate, fp32):
        if backend not in answers:
            answers[backend] = looped_answers(backend, tokens, ids, steps)
    (q_low, answers_low), (q_ref, answers_ref) = answers[candidate], answers[fp32]
    verified = solved_alike = None
    limit = AGREEMENT[real]
    if verifier is not None and real:
        solved, solved_low = verifier.verify(tokens, answers_ref), verifier.verify(tokens, answers_low)
        verified, solved_alike = (int(solved_low.sum()), int(solved.sum())), int((solved & solved_low).sum())
        if solved.any():
            limit = AGREEMENT[False]  # the unsolved are still searching: the solved must verify alike
    return PrecisionCheck(
        precision=_computes_in(candidate, meta), reference=_computes_in(fp32, meta), puzzles=len(tokens), steps=steps,
        real_puzzles=real,
        q_halt_diff=float(np.abs(q_low - q_ref).max()),
        q_halt_limit=Q_HALT_RTOL * max(1.0, float(np.abs(q_ref).max())),
        agreement=float((answers_low == answers_ref).mean()), agreement_limit=limit, verified=verified,
        solved_alike=solved_alike,
    )
