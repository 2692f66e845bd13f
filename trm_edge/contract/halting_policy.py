"""Halting policies as text: the grammar trm_edge.json stores (`halting.policy`) and every command
takes (`--halt`), and the defaults chosen by measurement. What each policy does per step is the
runtime's (runtime/halting.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

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
