"""What an export's task gives the runtime: its codec (text puzzles, verification, versions), and
the halting policy a name resolves to for that export (auto, calibrated, verified checked against
the task), with the bound on steps."""

from __future__ import annotations

import warnings

from trm_edge.contract.export_dir import MAX_STEPS_BOUND
from trm_edge.contract.halting_policy import LABEL_FREE_DEFAULT, LABEL_FREE_FORMS, HaltPolicy, parse_policy
from trm_edge.contract.metadata import ExportMetadata
from trm_edge.errors import TaskCodecWarning, TrmEdgeError
from trm_edge.tasks import TASKS, Codec, get_codec

RAW_TOKENS_TASK = "generic"  # a model of raw tokens: no text format, nothing to verify (ModelConfig.task)


def task_codec(meta: ExportMetadata) -> Codec | None:
    """The export's task codec; None for a model of raw tokens. A task with no codec registered in
    this process (a plugin task not registered before loading) runs on raw tokens and says so (a
    TaskCodecWarning, once); options its codec does not take are an error (a damaged export)."""
    if meta.task == RAW_TOKENS_TASK:
        return None
    if meta.task not in TASKS:
        warnings.warn(f"this export's task {meta.task!r} has no codec registered here (known: {', '.join(TASKS)}), so "
                      "it takes raw tokens only (an .npz), without text puzzles, test-time versions or verified "
                      "halting: register the task's codec (trm_edge.tasks.register) before loading it",
                      TaskCodecWarning, stacklevel=1)  # one location: shown once per process, not per call
        return None
    try:
        return get_codec(meta.task, meta.task_options)
    except TrmEdgeError as exc:
        raise TrmEdgeError(f"{exc} (in this export's trm_edge.json): export the checkpoint again") from None


def can_verify(meta: ExportMetadata) -> bool:
    codec = task_codec(meta)
    return codec is not None and codec.can_verify


def cannot_verify_message(meta: ExportMetadata) -> str:
    return (
        f"this model's task {meta.task!r} cannot verify its answers without labels, so halting "
        f"'verified' does not apply: use auto (the calibrated policy, else {LABEL_FREE_DEFAULT}), calibrated, "
        f"{LABEL_FREE_FORMS}"
    )


def halting_and_limit(meta: ExportMetadata, halt: str, max_steps: int | None) -> tuple[HaltPolicy, int]:
    """The halting policy `halt` names for this export, and the bound on steps per puzzle (the
    model's unless `max_steps` is given; a fixed-steps policy raises the default to its N)."""
    limit = meta.halting.max_steps if max_steps is None else max_steps
    if not 1 <= limit <= MAX_STEPS_BOUND:
        raise TrmEdgeError(f"max_steps must lie in [1, {MAX_STEPS_BOUND}], got {limit}")
    policy = resolve_policy(halt, meta)
    if policy.fixed_steps is not None and policy.fixed_steps > MAX_STEPS_BOUND:
        raise TrmEdgeError(f"fixed:N takes N up to {MAX_STEPS_BOUND}, got {policy.fixed_steps}")
    if policy.fixed_steps is not None and max_steps is None:
        limit = max(limit, policy.fixed_steps)
    return policy, limit


def resolve_policy(halt: str, meta: ExportMetadata) -> HaltPolicy:
    """`halt` for this export: auto and calibrated resolved, verified checked against the task."""
    calibrated = meta.halting.policy
    verifiable = can_verify(meta)
    if halt == "auto":
        if verifiable:  # a calibrated verified policy (its fallback chosen on data), else the default one
            stored = parse_policy(calibrated) if calibrated else None
            return stored if stored is not None and stored.verified else parse_policy("verified")
        return parse_policy(calibrated or LABEL_FREE_DEFAULT)
    if halt == "calibrated":
        if not calibrated:
            raise TrmEdgeError(
                "this export has no calibrated halting policy: run 'trm-edge calibrate "
                "EXPORT_DIR --data HELD_OUT.npz' first, or pick one (model, stable:2, ...)"
            )
        return parse_policy(calibrated)
    policy = parse_policy(halt)
    if policy.verified and not verifiable:
        raise TrmEdgeError(cannot_verify_message(meta))
    return policy
