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

import re
from dataclasses import dataclass

import numpy as np

from trm_edge.errors import TrmEdgeError

# What each numeric field of a policy accepts (checked before conversion).
_NUMBER = {"fixed": r"\d+", "stable": r"\d+", "max": r"\d+", "threshold": r"(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?"}

# For puzzles that never verify: give up once the answer did not change in a step. Measured
# (benchmarks/halting_defaults.py): the cheapest fallback within a point of verifying up to max
# steps on every labelled set here, hard lists included; a step cap would be cheaper on easy
# puzzles but cuts off hard ones that verify late (up to 5.5 points on magictour).
VERIFIED_FALLBACK = "stable:1"
# The default where answers cannot be verified and nothing was calibrated: the only label-free
# policy within half a point of fixed max steps on every model measured, random-weight ones
# included (benchmarks/halting_defaults.py).
LABEL_FREE_DEFAULT = "stable:4"


@dataclass(frozen=True)
class HaltPolicy:
    threshold: float | None = None  # halting probability to reach
    stable_steps: int | None = None  # consecutive unchanged answers that count as done
    fixed_steps: int | None = None  # run exactly this many steps, ignoring the halting head
    model_rule: bool = False  # the model's own rule
    verified: bool = False  # halt as soon as the answer verifies (threshold/stable/cap: the fallback)
    step_cap: int | None = None  # give up after this many steps (below the solver's max_steps)

    @property
    def name(self) -> str:
        if self.fixed_steps is not None:
            return f"fixed:{self.fixed_steps}"
        if self.model_rule:
            return "model"
        parts = ["verified"] if self.verified else []
        if self.verified and self.threshold is None and self.stable_steps is None and self.step_cap is None:
            return "verified,max"  # no fallback: a puzzle that never verifies runs to max steps
        if self.threshold is not None:
            parts.append(f"threshold:{self.threshold:g}")
        if self.stable_steps is not None:
            parts.append(f"stable:{self.stable_steps}")
        if self.step_cap is not None:
            parts.append(f"max:{self.step_cap}")
        return ",".join(parts)

    def to_dict(self) -> dict:
        return {"name": self.name}


LABEL_FREE_FORMS = "model, fixed:N, threshold:P, stable:K, threshold:P,stable:K (any of them ,max:N)"
POLICY_FORMS = f"auto, verified, verified,stable:K, verified,max:N, verified,max, {LABEL_FREE_FORMS} or calibrated"


def parse_policy(spec: str) -> HaltPolicy:
    """'model', 'fixed:16', 'threshold:0.9', 'stable:2', 'threshold:0.9,stable:2', 'verified',
    'verified,stable:3', 'verified,max:8', 'verified,max' (auto and calibrated are resolved
    against an export: `resolve_policy`)."""
    spec = spec.strip()
    if spec == "model":
        return HaltPolicy(model_rule=True)
    parts = spec.split(",")
    verified = parts[0] == "verified"
    if verified:
        parts = parts[1:] or VERIFIED_FALLBACK.split(",")
        if parts == ["max"]:
            return HaltPolicy(verified=True)
    fields: dict[str, str] = {}
    for part in parts:
        key, _, value = part.partition(":")
        if key not in ("fixed", "threshold", "stable", "max") or not value or key in fields:
            raise TrmEdgeError(f"halting policy {spec!r} not understood: use {POLICY_FORMS}")
        fields[key] = value
    if "fixed" in fields and (verified or len(fields) > 1):
        raise TrmEdgeError(f"halting policy {spec!r}: fixed:N runs exactly N steps and takes nothing beside it")
    if not all(re.fullmatch(_NUMBER[key], value) for key, value in fields.items()):
        raise TrmEdgeError(
            f"halting policy {spec!r}: fixed:N, stable:K and max:N take integers >= 1, threshold:P a probability "
            "in (0, 1)"
        )
    numbers = {key: float(value) if key == "threshold" else int(value) for key, value in fields.items()}
    threshold = numbers.get("threshold")
    if threshold is not None and not 0 < threshold < 1:
        raise TrmEdgeError(f"halting threshold must be a probability in (0, 1), got {threshold}")
    for key in ("fixed", "stable", "max"):
        if key in numbers and numbers[key] < 1:
            raise TrmEdgeError(f"{key}:N needs N >= 1, got {numbers[key]:g}")
    if "fixed" in numbers:
        return HaltPolicy(fixed_steps=int(numbers["fixed"]))
    return HaltPolicy(
        threshold=threshold,
        stable_steps=_int_or_none(numbers.get("stable")),
        verified=verified,
        step_cap=_int_or_none(numbers.get("max")),
    )


def _int_or_none(value: float | None) -> int | None:
    return None if value is None else int(value)


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
    max_steps: int,
    verified: np.ndarray | None = None,
) -> np.ndarray:
    """Which slots halt now. `steps` counts steps taken (>= 1), `unchanged` consecutive steps
    whose answer equalled the previous one (0 after the first step), `verified` whether each
    answer verifies (needed by verified policies only)."""
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
