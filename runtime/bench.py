"""Benchmarks of the runtime: latency per puzzle and per step, throughput, steps, accuracy.

Each batch size is a run of `solve_stream` over the same puzzles (after a warm-up) with a timer
around every backend step, so the figures are those of the loop users embed, continuous batching
and halting included.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from trm_edge import __version__
from trm_edge.contract.held_out import LabelledPuzzles, exact
from trm_edge.errors import TrmEdgeError
from trm_edge.runtime.solver import Solver


@dataclass
class BenchRow:
    batch: int
    puzzles: int
    seconds: float
    puzzles_per_s: float
    latency_ms: dict[str, float]  # per puzzle: p50, p90, p99
    step_ms: dict[str, float]  # per backend step (whole batch): p50, p90, p99
    mean_steps: float
    exact: float | None
    verified: float | None  # share of answers that verify (None: the task cannot verify)
    extra: dict[str, Any] = field(default_factory=dict)


def percentiles(values: list[float] | np.ndarray, scale: float = 1e3) -> dict[str, float]:
    arr = np.asarray(values, dtype=np.float64) * scale
    return {f"p{q}": round(float(np.percentile(arr, q)), 3) for q in (50, 90, 99)} if len(arr) else {}


def bench_batch(solver: Solver, puzzles: LabelledPuzzles, warmup: int = 1, versions: int = 1) -> BenchRow:
    """Solve all `puzzles` with the solver as loaded (its batch, backend and halting policy), after
    `warmup` runs of one batch. With `versions` > 1, through test-time versions
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

    for _ in range(warmup):
        solve(items[: solver.capacity])
    step_times: list[float] = []
    solver.step_timer = step_times.append
    try:
        start = time.perf_counter()
        results = solve(items)
        seconds = time.perf_counter() - start
    finally:
        solver.step_timer = None
    answers = np.stack([r.answer for r in results])
    extra = {}
    if versions > 1:
        extra = {"versions": versions,
                 "mean_version_steps": round(float(np.mean([r.version_steps for r in results])), 3),
                 "mean_versions_run": round(float(np.mean([r.versions_run for r in results])), 3)}
    return BenchRow(
        batch=solver.capacity,
        puzzles=len(results),
        seconds=round(seconds, 4),
        puzzles_per_s=round(len(results) / seconds, 2),
        latency_ms=percentiles([r.latency_s for r in results]),
        step_ms=percentiles(step_times),
        mean_steps=round(float(np.mean([r.steps for r in results])), 3),
        exact=float(exact(answers, puzzles.labels).mean()) if puzzles.labels is not None else None,
        verified=None if results[0].verified is None else round(float(np.mean([r.verified for r in results])), 4),
        extra=extra,
    )


def environment(solver: Solver, threads: int | None) -> dict[str, Any]:
    env = {
        "trm_edge": __version__,
        **solver.backend.describe(),
        "halting": solver.policy.name,
        "max_steps": solver.max_steps,
        "precision": solver.precision,
        "export_precision": solver.meta.precision,
        "chosen_because": solver.choice.why if solver.choice is not None else None,
        "threads": threads or os.cpu_count(),
        "cpu": platform.processor() or platform.machine(),
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


def step_ms_at(solver: Solver, inputs: np.ndarray, puzzle_identifiers: np.ndarray, width: int, repeat: int = 5
               ) -> float:
    """Median ms of one backend step with `width` slots full (the figure PyTorch's step time at the
    same batch compares with; the loop's halting and refilling are left out). The backend returns to
    its own width afterwards."""
    backend = solver.backend
    home = backend.batch
    take = np.resize(np.arange(len(inputs)), width)
    if backend.can_reslot:
        backend.resize(width)
    elif width != backend.batch:
        raise TrmEdgeError(f"this {backend.name} backend runs {backend.batch} slots, not {width}")
    try:
        backend.set_inputs(inputs[take], puzzle_identifiers[take])
        reset = np.ones(width, dtype=bool)
        backend.step(reset)  # warm-up, from the initial state
        reset[:] = False
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            backend.step(reset)
            times.append(time.perf_counter() - start)
    finally:
        if backend.can_reslot:
            backend.resize(home)
    return round(1e3 * float(np.median(times)), 3)
