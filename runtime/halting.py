"""When a puzzle is done: halting policies, applied per slot, always bounded by max_steps.

- `model`: the model's own rule (TRM `q_halt > 0`, HRM `q_halt > q_continue`).
- `threshold:P`: the halting probability sigmoid(score) reaches P, where score is q_halt (TRM) or
  q_halt - q_continue (HRM); P = 0.5 is the model rule.
- `stable:K`: the answer has not changed for K consecutive steps.
- `threshold:P,stable:K`: whichever fires first.
- `fixed:N`: exactly N steps, as the official evaluation runs.
- `verified`: the answer is a solution by the task's own rules (a valid Sudoku, a shortest maze
  path; `Codec.verify`). A puzzle that never verifies stops by a fallback: `verified,stable:K`,
  `verified,threshold:P` or both; `verified,max` has none (max steps); bare `verified` takes
  `VERIFIED_FALLBACK`, chosen by measurement.
- `calibrated`: the policy chosen on held-out data and stored in trm_edge.json (`trm-edge calibrate`).
- `auto`: `verified` when the task can verify, else the calibrated policy, else `LABEL_FREE_DEFAULT`
  (resolved by the solver, which knows the task and the export).

The same code decides live in the solver and offline in calibration (`simulate`), so a calibrated
curve predicts what the runtime does.
"""

from __future__ import annotations

import numpy as np

from trm_edge.contract.halting_policy import HaltPolicy
from trm_edge.errors import TrmEdgeError


def halt_score(rule: str, q_halt: np.ndarray, q_continue: np.ndarray) -> np.ndarray:
    """The logit whose sign is the model's decision: q_halt (TRM) or q_halt - q_continue (HRM)."""
    return q_halt if rule == "q_halt>0" else q_halt - q_continue


def halt_probability(score: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(score, -60, 60)))


def decide(
    policy: HaltPolicy,
    score: np.ndarray,
    steps: np.ndarray,
    unchanged: np.ndarray,
    max_steps: int | np.ndarray,
    verified: np.ndarray | None = None,
) -> np.ndarray:
    """Which slots halt now. `steps` counts steps taken (>= 1), `unchanged` consecutive steps
    whose answer equalled the previous one (0 after the first step), `max_steps` the bound (one
    for all, or each slot's own), `verified` whether each answer verifies (needed by verified
    policies only)."""
    done = steps >= max_steps
    if policy.verified:
        if verified is None:
            raise TrmEdgeError("the verified halting policy needs a task whose answers can be verified")
        done = done | verified
    if policy.fixed_steps is not None:
        return done | (steps >= policy.fixed_steps)
    if policy.model_rule:
        return done | (score > 0)
    if policy.threshold is not None:
        done = done | (halt_probability(score) >= policy.threshold)
    if policy.stable_steps is not None:
        done = done | (unchanged >= policy.stable_steps)
    if policy.step_cap is not None:
        done = done | (steps >= policy.step_cap)
    return done


def count_unchanged(unchanged: np.ndarray, same: np.ndarray, first_step: np.ndarray) -> np.ndarray:
    """Consecutive steps whose answer equalled the previous one; a puzzle's first step counts none."""
    return np.where(same & ~first_step, unchanged + 1, 0)


def simulate(
    policy: HaltPolicy,
    answers: np.ndarray,
    scores: np.ndarray,
    max_steps: int,
    verified: np.ndarray | None = None,
) -> np.ndarray:
    """The step at which each puzzle halts (1-based), from recorded per-step answers (S, N, seq),
    halting scores (S, N) and, for verified policies, verification (S, N); the same rule `decide`
    applies live."""
    total, count = answers.shape[0], answers.shape[1]
    halted_at = np.zeros(count, dtype=np.int64)
    unchanged = np.zeros(count, dtype=np.int64)
    for t in range(total):
        same = (answers[t] == answers[t - 1]).all(axis=1) if t else np.zeros(count, dtype=bool)
        unchanged = count_unchanged(unchanged, same, np.full(count, t == 0))
        fire = decide(
            policy, scores[t], np.full(count, t + 1), unchanged, min(max_steps, total),
            None if verified is None else verified[t],
        )
        halted_at = np.where((halted_at == 0) & fire, t + 1, halted_at)
    return halted_at
