"""What the solver's loop knows about each slot of the batch, and what a source may put in one.

A source (a list, a live feed, the versions scheduler) hands the loop (tokens, puzzle id) pairs, or
`SlotWork` where a puzzle needs more than that: its own step bound (a version with only part of a
budget left) or noise on its latent state (a trajectory, runtime/trajectories.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from trm_edge.runtime.trajectories import Nudger


@dataclass
class SlotWork:
    """A puzzle for one slot with settings of its own."""

    tokens: np.ndarray  # (seq_len,) int32, checked by Solver.encode
    ident: int  # puzzle identifier
    nudger: Nudger | None = None  # noise after its steps (a trajectory), or none
    max_steps: int | None = None  # its step bound, at most the solver's (None: the solver's)


@dataclass
class Slots:
    """What the loop knows about each slot of the batch."""

    width: int
    seq_len: int
    max_steps: int  # the solver's step bound: each slot's limit unless its work sets a lower one

    def __post_init__(self) -> None:
        b = self.width
        self.tokens = np.zeros((b, self.seq_len), dtype=np.int32)
        self.ids = np.zeros(b, dtype=np.int32)
        self.active = np.zeros(b, dtype=bool)
        self.index = np.full(b, -1, dtype=np.int64)
        self.steps = np.zeros(b, dtype=np.int64)
        self.unchanged = np.zeros(b, dtype=np.int64)
        self.started = np.zeros(b, dtype=np.float64)
        self.previous = np.zeros((b, self.seq_len), dtype=np.int32)
        self.reset = np.zeros(b, dtype=bool)
        self.limit = np.full(b, self.max_steps, dtype=np.int64)  # steps this slot's puzzle may take
        self.nudgers = np.full(b, None, dtype=object)  # trajectories' noise, None for plain puzzles

    def enter(self, slot: int, item: SlotWork | tuple[np.ndarray, int] | Any, index: int) -> None:
        if isinstance(item, SlotWork):
            self.tokens[slot], self.ids[slot] = item.tokens, item.ident
            self.nudgers[slot] = item.nudger
            self.limit[slot] = self.max_steps if item.max_steps is None else min(item.max_steps, self.max_steps)
        else:
            self.tokens[slot], self.ids[slot] = item
            self.nudgers[slot], self.limit[slot] = None, self.max_steps
        self.active[slot], self.reset[slot] = True, True
        self.index[slot], self.steps[slot], self.unchanged[slot] = index, 0, 0
        self.started[slot] = time.perf_counter()

    def take(self, keep: np.ndarray, width: int) -> Slots:
        out = Slots(width, self.seq_len, self.max_steps)
        n = len(keep)
        for name in ("tokens", "ids", "active", "index", "steps", "unchanged", "started", "previous", "reset",
                     "limit", "nudgers"):
            getattr(out, name)[:n] = getattr(self, name)[keep]
        return out
