"""When a puzzle is done: halting policies, applied per slot, always bounded by max_steps.

- `model`: the model's own rule (TRM `q_halt > 0`, HRM `q_halt > q_continue`).
- `threshold:P`: the halting probability sigmoid(score) reaches P, where score is q_halt (TRM) or
  q_halt - q_continue (HRM); P = 0.5 is the model rule.
- `stable:K`: the answer has not changed for K consecutive steps.
- `threshold:P,stable:K`: whichever fires first.
- `fixed:N`: exactly N steps, as the official evaluation runs.
- `calibrated`: the policy chosen on held-out data and stored in trm_edge.json (`trm-edge calibrate`).

The same code decides live in the solver and offline in calibration (`simulate`), so a calibrated
curve predicts what the runtime does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trm_edge.errors import TrmEdgeError


@dataclass(frozen=True)
class HaltPolicy:
    threshold: float | None = None  # halting probability to reach
    stable_steps: int | None = None  # consecutive unchanged answers that count as done
    fixed_steps: int | None = None  # run exactly this many steps, ignoring the halting head
    model_rule: bool = False  # the model's own rule

    @property
    def name(self) -> str:
        if self.fixed_steps is not None:
            return f"fixed:{self.fixed_steps}"
        if self.model_rule:
            return "model"
        parts = []
        if self.threshold is not None:
            parts.append(f"threshold:{self.threshold:g}")
        if self.stable_steps is not None:
            parts.append(f"stable:{self.stable_steps}")
        return ",".join(parts)

    def to_dict(self) -> dict:
        return {"name": self.name}


def parse_policy(spec: str) -> HaltPolicy:
    """'model', 'fixed:16', 'threshold:0.9', 'stable:2', 'threshold:0.9,stable:2'."""
    spec = spec.strip()
    if spec == "model":
        return HaltPolicy(model_rule=True)
    fields: dict[str, str] = {}
    for part in spec.split(","):
        key, _, value = part.partition(":")
        if key not in ("fixed", "threshold", "stable") or not value or key in fields:
            raise TrmEdgeError(
                f"halting policy {spec!r} not understood: use model, fixed:N, threshold:P, stable:K, "
                "threshold:P,stable:K or calibrated"
            )
        fields[key] = value
    try:
        if "fixed" in fields:
            if len(fields) > 1:
                raise ValueError
            steps = int(fields["fixed"])
            if steps < 1:
                raise ValueError
            return HaltPolicy(fixed_steps=steps)
        threshold = float(fields["threshold"]) if "threshold" in fields else None
        stable = int(fields["stable"]) if "stable" in fields else None
    except ValueError:
        raise TrmEdgeError(
            f"halting policy {spec!r}: fixed:N and stable:K take integers >= 1, threshold:P a probability in (0, 1)"
        ) from None
    if threshold is not None and not 0 < threshold < 1:
        raise TrmEdgeError(f"halting threshold must be a probability in (0, 1), got {threshold}")
    if stable is not None and stable < 1:
        raise TrmEdgeError(f"stable:K needs K >= 1, got {stable}")
    return HaltPolicy(threshold=threshold, stable_steps=stable)


def halt_score(rule: str, q_halt: np.ndarray, q_continue: np.ndarray) -> np.ndarray:
    """The logit whose sign is the model's decision: q_halt (TRM) or q_halt - q_continue (HRM)."""
    return q_halt if rule == "q_halt>0" else q_halt - q_continue


def halt_probability(score: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(score, -60, 60)))


def decide(
    policy: HaltPolicy, score: np.ndarray, steps: np.ndarray, unchanged: np.ndarray, max_steps: int
) -> np.ndarray:
    """Which slots halt now. `steps` counts steps taken (>= 1), `unchanged` consecutive steps
    whose answer equalled the previous one (0 after the first step)."""
    done = steps >= max_steps
    if policy.fixed_steps is not None:
        return done | (steps >= policy.fixed_steps)
    if policy.model_rule:
        return done | (score > 0)
    if policy.threshold is not None:
        done = done | (halt_probability(score) >= policy.threshold)
    if policy.stable_steps is not None:
        done = done | (unchanged >= policy.stable_steps)
    return done


def count_unchanged(unchanged: np.ndarray, same: np.ndarray, first_step: np.ndarray) -> np.ndarray:
    """Consecutive steps whose answer equalled the previous one; a puzzle's first step counts none."""
    return np.where(same & ~first_step, unchanged + 1, 0)


def simulate(policy: HaltPolicy, answers: np.ndarray, scores: np.ndarray, max_steps: int) -> np.ndarray:
    """The step at which each puzzle halts (1-based), from recorded per-step answers (S, N, seq)
    and halting scores (S, N); the same rule `decide` applies live."""
    total, count = answers.shape[0], answers.shape[1]
    halted_at = np.zeros(count, dtype=np.int64)
    unchanged = np.zeros(count, dtype=np.int64)
    for t in range(total):
        same = (answers[t] == answers[t - 1]).all(axis=1) if t else np.zeros(count, dtype=bool)
        unchanged = count_unchanged(unchanged, same, np.full(count, t == 0))
        fire = decide(policy, scores[t], np.full(count, t + 1), unchanged, min(max_steps, total))
        halted_at = np.where((halted_at == 0) & fire, t + 1, halted_at)
    return halted_at
