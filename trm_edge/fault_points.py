"""Test hooks for the atomic writers (trm_edge/atomic.py, tests/test_atomic_writes.py): every step a
writer takes on disk goes through `fault_point`. `TRM_EDGE_FAULT_LOG=FILE` appends one line per point
reached (its number and label), so a first run counts them; `TRM_EDGE_FAULT_AT=N` stops the process
with SIGKILL at the N-th point (`TRM_EDGE_FAULT_SIGNAL=INT` sends SIGINT instead: a KeyboardInterrupt
there). A no-op unless they are set.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator

FAULT_AT_ENV = "TRM_EDGE_FAULT_AT"
FAULT_LOG_ENV = "TRM_EDGE_FAULT_LOG"
FAULT_SIGNAL_ENV = "TRM_EDGE_FAULT_SIGNAL"
_points_reached = 0
_points_off = False


def fault_point(label: str) -> None:
    """A place where a kill must leave the old or the complete new, never a mix (see the module's
    test hooks; a no-op unless they are set)."""
    global _points_reached
    at, log = os.environ.get(FAULT_AT_ENV), os.environ.get(FAULT_LOG_ENV)
    if (not at and not log) or _points_off:
        return
    _points_reached += 1
    if log:
        with open(log, "a", encoding="utf-8") as handle:
            handle.write(f"{_points_reached} {label}\n")
    if at and int(at) == _points_reached:
        sig = signal.SIGINT if os.environ.get(FAULT_SIGNAL_ENV, "KILL").upper() == "INT" else signal.SIGKILL
        os.kill(os.getpid(), sig)


@contextlib.contextmanager
def no_fault_points() -> Iterator[None]:
    """For a cache's write (.trm_edge.verified): whether one is due depends on the clock, and a
    writer's steps must count the same in every run of the fault-injection tests."""
    global _points_off
    was, _points_off = _points_off, True
    try:
        yield
    finally:
        _points_off = was
