"""Benchmarks of the runtime: the step with every slot full, and the whole solve: latency per
puzzle, throughput, steps, accuracy.

Two figures that must not be mixed up. The step is timed at the solver's full width, every slot
busy: alone as auto and doctor time it (`full_slot_step`), or, against other engines (bench
--compare-torch, the demo, benchmarks/step_peers.py), in the same interleaved rounds as theirs
(`full_slot_stepper`, `interleaved_seconds`): the figure to compare with another engine's step at
the same batch, whatever the number of puzzles. The whole solve is a run of
`solve_stream` over the puzzles (after a warm-up), continuous batching and halting included: its
own steps run fewer slots as puzzles halt, so their time depends on the work (`BenchRow.loop`).
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from trm_edge import __version__
from trm_edge.contract.held_out import LabelledPuzzles, exact
from trm_edge.errors import TrmEdgeError
from trm_edge.hardware import cpu_name_and_flags, usable_cores
from trm_edge.runtime.backends.base import Backend
from trm_edge.runtime.backends.timing import summarise, time_steps
from trm_edge.runtime.solver import Solver


@dataclass
class BenchRow:
    batch: int
    puzzles: int
    seconds: float
    puzzles_per_s: float
    latency_ms: dict[str, float]  # per puzzle: p50, p90, p99
    # One backend step, every slot full: ms, spread_ms, width, timed_steps, timed_as (`step_record`). None
    # where the caller times it beside other engines afterwards (bench_batch's time_step=False).
    step: dict[str, Any] | None
    # The whole solve's own backend steps: how many, the mean puzzles in each, their ms (p50/p90/p99).
    # Slots empty as puzzles halt, so these depend on the puzzles given: not the step's speed.
    loop: dict[str, Any]
    mean_steps: float
    exact: float | None
    verified: float | None  # share of answers that verify (None: the task cannot verify)
    extra: dict[str, Any] = field(default_factory=dict)


def percentiles(values: list[float] | np.ndarray, scale: float = 1e3) -> dict[str, float]:
    arr = np.asarray(values, dtype=np.float64) * scale
    return {f"p{q}": round(float(np.percentile(arr, q)), 3) for q in (50, 90, 99)} if len(arr) else {}


def bench_batch(solver: Solver, puzzles: LabelledPuzzles, warmup: int = 1, versions: int = 1,
                time_step: bool = True) -> BenchRow:
    """The step at the solver's full width (`full_slot_step`; with `time_step` False none: the
    caller times it beside other engines, `full_slot_stepper`), then all `puzzles` solved with the
    solver as loaded (its batch, backend and halting policy), after `warmup` runs of one batch.
    With `versions` > 1, through test-time versions
    (runtime/versions.py): `extra` then holds the mean version-steps (every step of every version
    run) and versions run per puzzle."""
    items = [(t, int(i)) for t, i in zip(puzzles.inputs, puzzles.puzzle_identifiers, strict=True)]
    if versions > 1:
        from trm_edge.runtime.versions import VersionedRun

        def solve(batch: list[tuple[np.ndarray, int]]) -> list[Any]:
            return VersionedRun(solver, versions).solve(batch)
    else:

        def solve(batch: list[tuple[np.ndarray, int]]) -> list[Any]:
            return sorted(solver.solve_stream(batch), key=lambda r: r.index)

    step = full_slot_step(solver, puzzles.inputs, puzzles.puzzle_identifiers, solver.slots) if time_step else None
    for _ in range(warmup):
        solve(items[: solver.slots])
    step_times: list[float] = []
    solver.step_timer = step_times.append
    try:
        start = time.perf_counter()
        results = solve(items)
        seconds = time.perf_counter() - start
    finally:
        solver.step_timer = None
    answers = np.stack([r.answer for r in results])
    # Steps the puzzles took, each in a slot of its own (with versions: every version's steps).
    slot_steps = sum(r.version_steps if versions > 1 else r.steps for r in results)
    extra = {}
    if versions > 1:
        extra = {"versions": versions,
                 "mean_version_steps": round(float(np.mean([r.version_steps for r in results])), 3),
                 "mean_versions_run": round(float(np.mean([r.versions_run for r in results])), 3)}
    return BenchRow(
        batch=solver.slots,
        puzzles=len(results),
        seconds=round(seconds, 4),
        puzzles_per_s=round(len(results) / seconds, 2),
        latency_ms=percentiles([r.latency_s for r in results]),
        step=step,
        loop={"steps": len(step_times), "mean_puzzles_per_step": round(slot_steps / max(1, len(step_times)), 2),
              "step_ms": percentiles(step_times)},
        mean_steps=round(float(np.mean([r.steps for r in results])), 3),
        exact=float(exact(answers, puzzles.labels).mean()) if puzzles.labels is not None else None,
        verified=None if results[0].verified is None else round(float(np.mean([r.verified for r in results])), 4),
        extra=extra,
    )


def environment(solver: Solver, threads: int | None) -> dict[str, Any]:
    cpu, flags = cpu_name_and_flags()  # named as doctor, the demo and auto's cache name it
    env = {
        "trm_edge": __version__,
        **solver.backend.describe(),
        "halting": solver.policy.name,
        "max_steps": solver.max_steps,
        "precision": solver.precision,
        "export_precision": solver.meta.precision,
        "chosen_because": solver.choice.why if solver.choice is not None else None,
        "threads": threads or len(usable_cores()),  # under taskset or a cpuset: the cores it may run on
        "cpu": cpu,
        "cpu_flags": flags,
        "python": platform.python_version(),
    }
    power = _jetson_power_mode()
    if power:
        env["jetson_power_mode"] = power
    return env


def _jetson_power_mode() -> str | None:
    """nvpmodel's current mode on a Jetson (absent elsewhere)."""
    import shutil
    import subprocess

    if shutil.which("nvpmodel") is None:
        return None
    try:
        out = subprocess.run(["nvpmodel", "-q"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return " ".join(out.split()) or None


def interleaved_seconds(calls: Mapping[str, Callable[[], object]], rounds: int) -> dict[str, list[float]]:
    """Each call's wall seconds over `rounds` interleaved rounds: a drifting machine slows every one alike."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    return times


def full_slot_step(solver: Solver, inputs: np.ndarray, puzzle_identifiers: np.ndarray, width: int
                   ) -> dict[str, Any]:
    """One backend step with `width` slots full of these puzzles (repeated to fill them), timed as
    auto times its candidates (backends/timing.py: warm-up, interleaved untimed steps, more passes
    while noisy), so that bench, the demo and doctor give one figure for one step: the median (ms),
    its interquartile spread, the width and how many steps were timed. The halting loop's refilling
    is left out: this is what PyTorch's step at the same batch compares with."""
    backend = solver.backend
    if not backend.can_reslot and width != backend.width:
        raise TrmEdgeError(f"this {backend.name} backend runs {backend.width} slots, not {width}: time it at "
                           f"{backend.width}")
    timing = time_steps({backend.name: backend}, inputs, puzzle_identifiers, width)[backend.name]
    return {"ms": timing.median_ms, "spread_ms": timing.spread_ms, "width": width, "timed_steps": timing.steps,
            "timed_as": "alone, as auto times its candidates"}


def full_slot_stepper(backend: Backend, inputs: np.ndarray, puzzle_identifiers: np.ndarray, width: int
                      ) -> Callable[[], object]:
    """A call that runs one more backend step with `width` slots full of these puzzles (repeated to
    fill them), after one untimed step from the initial state: the runtime's call in interleaved
    rounds beside other engines' (`interleaved_seconds`, through trm_edge/app/torch_eval.py's
    `interleaved_steps`, which bench --compare-torch, the demo and benchmarks/step_peers.py share),
    each of its steps timed as theirs are. The backend is left at `width`."""
    if backend.width != width:
        if not backend.can_reslot:
            raise TrmEdgeError(f"this {backend.name} backend runs {backend.width} slots, not {width}: time it at "
                               f"{backend.width}")
        backend.resize(width)
    rows = np.resize(np.arange(len(inputs)), width)
    backend.set_inputs(inputs[rows], puzzle_identifiers[rows])
    backend.step(np.ones(width, dtype=bool))  # from the initial state, untimed (as each peer's first step)
    carry = np.zeros(width, dtype=bool)
    return lambda: backend.step(carry)


def step_record(seconds: list[float], width: int) -> dict[str, Any]:
    """A step timed in interleaved rounds, recorded as `full_slot_step` records one: the median (ms),
    its interquartile spread, the width and how many steps were timed."""
    timing = summarise({"step": seconds})["step"]
    return {"ms": timing.median_ms, "spread_ms": timing.spread_ms, "width": width, "timed_steps": timing.steps,
            "timed_as": "interleaved with the PyTorch peers, one step each per round"}
