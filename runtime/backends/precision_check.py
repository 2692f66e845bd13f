"""Checking a lower inference precision before trusting it.

A backend that lowers the precision inside the compiled model (OpenVINO's bf16 on a CPU that has
it) runs a graph that export validated only in float32. Before such a backend answers anything,
it runs the export's own validation puzzles (validation.npz: real held-out puzzles when the export
was given `--data`, else the random tokens validation used) for the validation's looped steps, and
so does a float32 twin of the same backend. The lower precision is trusted only when

- step 1's halting logits agree within a tolerance relative to their scale,
- the answers after the looped steps agree on enough cells: 99% on real puzzles; 90% on random
  tokens, where a trained model's answers are chaotic and the bar catches a broken graph only;
- where the task verifies its answers, no fewer puzzles verify than in float32 (one spared), and
  the 99% holds on the puzzles float32 solved. A puzzle still unsolved after the looped steps is
  still searching, in any precision, and a rounding sends that search elsewhere: over all puzzles
  the 90% bar applies then (generated Sudokus with 22-40 givens agree on ~98.7% of cells in bf16
  after 4 steps, every one float32 solved solved alike).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trm_edge.contract.metadata import ExportMetadata
from trm_edge.contract.validation_file import random_puzzles, read_validation_puzzles

AGREEMENT = {True: 0.99, False: 0.90}  # real puzzles / random tokens
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
    # Cells agreeing on the puzzles float32 solved (None where the task cannot verify, or none was solved).
    solved_agreement: float | None = None

    @property
    def passed(self) -> bool:
        verified_ok = self.verified is None or self.verified[0] >= self.verified[1] - 1
        solved_ok = self.solved_agreement is None or self.solved_agreement >= AGREEMENT[True]
        return (self.q_halt_diff <= self.q_halt_limit and self.agreement >= self.agreement_limit and verified_ok
                and solved_ok)

    def summary(self) -> str:
        what = "real puzzles" if self.real_puzzles else "random tokens"
        text = (f"{self.precision} against fp32 on {self.puzzles} {what}, {self.steps} steps: answers agree on "
                f"{self.agreement:.1%} of cells (needs {self.agreement_limit:.0%})")
        if self.solved_agreement is not None:
            text += f", on {self.solved_agreement:.1%} where fp32 solved (needs {AGREEMENT[True]:.0%})"
        text += f", step-1 q_halt differs by {self.q_halt_diff:.3g} (limit {self.q_halt_limit:.3g})"
        if self.verified is not None:
            text += f", {self.verified[0]} verified ({self.verified[1]} in fp32)"
        return text


def looped_answers(backend: Any, tokens: np.ndarray, ids: np.ndarray, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """(step-1 q_halt, answers after `steps`) of a resizable backend on these puzzles; its width
    is restored afterwards (empty slots)."""
    width = backend.batch
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


def check_precision(candidate: Any, fp32: Any, export_dir: Path, meta: ExportMetadata, verifier: Any = None
                    ) -> PrecisionCheck:
    """Run the export's validation puzzles on `candidate` and on its float32 twin `fp32`."""
    tokens, ids, real = read_validation_puzzles(export_dir, meta) or random_puzzles(meta)
    validation = meta.validation or {}
    steps = int(validation.get("steps") or DEFAULT_STEPS)
    q_low, answers_low = looped_answers(candidate, tokens, ids, steps)
    q_ref, answers_ref = looped_answers(fp32, tokens, ids, steps)
    verified = solved_agreement = None
    limit = AGREEMENT[real]
    if verifier is not None and real:
        solved = verifier.verify(tokens, answers_ref)
        verified = (int(verifier.verify(tokens, answers_low).sum()), int(solved.sum()))
        if solved.any():
            solved_agreement = float((answers_low[solved] == answers_ref[solved]).mean())
            limit = AGREEMENT[False]  # the unsolved are still searching: the strict bar holds on the solved
    return PrecisionCheck(
        precision=getattr(candidate, "precision", meta.precision), puzzles=len(tokens), steps=steps, real_puzzles=real,
        q_halt_diff=float(np.abs(q_low - q_ref).max()),
        q_halt_limit=Q_HALT_RTOL * max(1.0, float(np.abs(q_ref).max())),
        agreement=float((answers_low == answers_ref).mean()), agreement_limit=limit, verified=verified,
        solved_agreement=solved_agreement,
    )
