"""Timing the candidates auto weighs: each backend's step at one width, every slot full, in
interleaved rounds (a drifting machine slows every candidate alike), each timed step after one
untimed step of its own (the step before was another candidate's, whose threads may still spin and
whose data fills the caches; a solver runs its backend step after step), within a budget per
candidate; timed again, up to TIMING_PASSES, while the outcome is unclear (`unclear`). A close
call is never settled on fewer than SETTLING_STEPS timed steps of each contender: a large model's
step spends the budget at once, and one sample of each once settled a 4% difference as a tie."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import numpy as np

from trm_edge.runtime.backends.base import Backend

TIMING_BUDGET_S = 1.0  # per candidate and pass, at most (a step of a large model can take a second)
TIMING_ROUNDS = 5  # interleaved rounds of one step each
TIMING_PASSES = 3  # passes of TIMING_ROUNDS at most, while the outcome is unclear
NOISY = 0.25  # a spread (interquartile range) above this share of the median is noise, not a measurement
# Contenders whose medians all lie within this share of the fastest's, none of them noisy, are a tie:
# another pass could change the choice by no more than that, and costs seconds at every start (on 2
# cores, three candidates tied within 9% took 3 passes, 10 s at 16 slots, before this rule).
TIE = 0.10
LONG_STEP_S = 0.25  # a step this long needs no untimed step before it (threads spinning, caches: small effects)
# A close call (two contenders or more, or medians within TIE) is settled on at least this many timed
# steps of each: one step has no spread to judge by (1.203 s against 1.253 s single ARC steps, a tie at once).
SETTLING_STEPS = 3

# What shows the first measurement while it runs (auto's compiles, checks and timing: 10-16 s on a new
# export): a function of the message giving a context manager, e.g. rich's `console.status`. None (the
# default) is quiet, as a library embedded in an app should be; the CLI sets a spinner on stderr where
# that is a terminal (app/cli_common.py); an app may set its own.
MEASURING_STATUS: ContextVar[Callable[[str], AbstractContextManager[Any]] | None] = ContextVar(
    "measuring_status", default=None)


@dataclass(frozen=True)
class StepTiming:
    median_ms: float
    spread_ms: float  # the interquartile range of the steps timed
    steps: int


def time_steps(backends: dict[str, Backend], tokens: np.ndarray, ids: np.ndarray, width: int,
               clock: Callable[[], float] = time.perf_counter) -> dict[str, StepTiming]:
    """Each backend's step at `width` slots, every slot full of the export's validation puzzles
    (after a warm-up step), in interleaved rounds within a budget per pass; more passes (at most
    TIMING_PASSES, and beyond while a contender has fewer than SETTLING_STEPS) while the outcome is
    unclear. Each backend is back at its own width
    afterwards."""
    rows = np.resize(np.arange(len(tokens)), width)
    home = {name: backend.width for name, backend in backends.items()}
    last: dict[str, float] = {}  # each backend's latest step, in seconds
    for name, backend in backends.items():
        if backend.width != width:  # a fixed-width backend (TensorRT) is timed at its own width
            backend.resize(width)
        backend.set_inputs(tokens[rows], ids[rows])
        start = clock()
        backend.step(np.ones(width, dtype=bool))  # warm-up, from the initial state
        last[name] = clock() - start
    times: dict[str, list[float]] = {name: [] for name in backends}
    timed = list(backends)
    carry = np.zeros(width, dtype=bool)
    passes = 0
    while timed:
        spent = dict.fromkeys(timed, 0.0)
        for _ in range(TIMING_ROUNDS):
            for name in timed:
                # The first pass sorts out the contenders; a later one times each past the budget until
                # it has SETTLING_STEPS (a large model's steps each spend the budget).
                if spent[name] > TIMING_BUDGET_S and (passes == 0 or len(times[name]) >= SETTLING_STEPS):
                    continue
                if last[name] < LONG_STEP_S:  # one untimed step first (see the module's doc)
                    backends[name].step(carry)
                    spent[name] += last[name]
                start = clock()
                backends[name].step(carry)
                last[name] = clock() - start
                times[name].append(last[name])
                spent[name] += last[name]
        passes += 1
        timed = unclear(summarise(times))
        # Past TIMING_PASSES only to give a contender that joined late its SETTLING_STEPS (one pass does).
        if passes >= TIMING_PASSES and all(len(times[name]) >= SETTLING_STEPS for name in timed):
            break
    for name, backend in backends.items():
        if backend.width != home[name]:
            backend.resize(home[name])
    return summarise(times)


def summarise(times: dict[str, list[float]]) -> dict[str, StepTiming]:
    """Median and interquartile range of each backend's steps; a single step (a large model, whose
    steps spend the budget at once) counts as noisy as NOISY says, so that close calls are timed again."""
    out = {}
    for name, values in times.items():
        median = statistics.median(values)
        if len(values) > 1:
            quartiles = statistics.quantiles(values, n=4)
            spread = quartiles[2] - quartiles[0]
        else:
            spread = NOISY * median
        out[name] = StepTiming(round(1e3 * median, 3), round(1e3 * spread, 3), len(values))
    return out


def unclear(timings: dict[str, StepTiming]) -> list[str]:
    """The candidates to time again: every one that could still be the fastest (its median less its
    spread reaches the fastest's median plus its spread) when there are two or more such, or the
    fastest alone is noisy (spread over NOISY of its median), or one of a close call (two or more
    contenders, or medians within TIE) has fewer than SETTLING_STEPS timed steps; none when the
    fastest stands clear, or when the contenders are a tie (every median within TIE of the fastest's,
    none noisy, each timed SETTLING_STEPS times)."""
    best = min(timings.values(), key=lambda t: t.median_ms)
    contenders = [name for name, t in timings.items()
                  if t.median_ms - t.spread_ms <= best.median_ms + best.spread_ms]
    # A close call: contenders, or medians within TIE of the fastest's (a step or two of each has no
    # spread to tell them apart by).
    close = [name for name, t in timings.items() if name in contenders or t.median_ms <= (1 + TIE) * best.median_ms]
    if len(close) > 1 and any(timings[name].steps < SETTLING_STEPS for name in close):
        return close
    if any(timings[name].spread_ms > NOISY * timings[name].median_ms for name in contenders):
        return contenders
    tied = all(timings[name].median_ms <= (1 + TIE) * best.median_ms for name in contenders)
    return contenders if len(contenders) > 1 and not tied else []
