"""Continuous batching for concurrent callers (web handlers, worker threads).

    feed = SolverFeed(Solver.load("export_dir", slots=16)).start()
    result = feed.submit("53..7....").result(timeout=5)     # from any thread
    feed.close()

Callers submit puzzles and get futures; one worker thread runs the solver's loop over whatever
is waiting. A puzzle that arrives while others are mid-flight takes the next free slot at the
next step, and in-flight puzzles never wait for new arrivals. A malformed puzzle is rejected in
`submit` (PuzzleError) and never reaches the loop. A puzzle whose caller gave up (its future
cancelled, or its `cancelled` check true: a server's hung-up client) leaves its slot at the next
step, so abandoned work never holds up anyone else's.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any

import numpy as np

from trm_edge.errors import TrmEdgeError
from trm_edge.runtime.solver import IDLE, Puzzle, Result, Solver

CANCEL_CHECK_S = 0.05  # how often in-flight puzzles are asked whether their caller gave up


class FeedClosedError(TrmEdgeError):
    """The feed no longer takes puzzles: it was closed, or its backend failed."""


class SolverFeed:
    def __init__(self, solver: Solver) -> None:
        self.solver = solver
        self._waiting: deque[tuple[Any, Future[Result], Callable[[], bool] | None]] = deque()
        self._pending: dict[int, Future[Result]] = {}  # by the loop's result index (order of entry)
        self._cancel_checks: dict[int, Callable[[], bool]] = {}
        self._last_check = 0.0
        self._entered = 0
        self._cond = threading.Condition()
        self._closed = False
        self._failed: BaseException | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> SolverFeed:
        self._thread = threading.Thread(target=self._work, name="trm-edge-solver", daemon=True)
        self._thread.start()
        return self

    def submit(self, puzzle: Puzzle) -> Future[Result]:
        return self.submit_encoded(self.solver.encode(puzzle))  # encode raises PuzzleError here

    def submit_encoded(
        self, encoded: tuple[np.ndarray, int], cancelled: Callable[[], bool] | None = None
    ) -> Future[Result]:
        """Submit a puzzle already checked by `solver.encode`. `cancelled`, if given, is asked now
        and then while the puzzle waits or runs; once it says True the puzzle is dropped and its
        future cancelled (cancelling the future does the same)."""
        future: Future[Result] = Future()
        with self._cond:
            if self._failed is not None:
                raise FeedClosedError(f"this SolverFeed's solver failed: {self._failed}")
            if self._closed:
                raise FeedClosedError("this SolverFeed is closed")
            self._waiting.append((encoded, future, cancelled))
            self._cond.notify_all()
        return future

    def wait_for_room(self, limit: int) -> None:
        """Block while `limit` or more puzzles wait for a slot (back-pressure for a server: its
        own queue holds the rest, where its metrics and timeouts see them)."""
        with self._cond:
            self._cond.wait_for(lambda: len(self._waiting) < limit or self._closed or self._failed is not None)

    def close(self, timeout: float | None = 10.0) -> None:
        """Finish what was submitted, then stop the worker."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    # --- the worker -------------------------------------------------------------------------
    def _source(self) -> Iterator[Any]:
        while True:
            with self._cond:
                if self._waiting:
                    encoded, future, cancelled = self._waiting.popleft()
                    self._cond.notify_all()  # room for callers in wait_for_room
                elif self._closed:
                    return
                else:
                    encoded = None
            if encoded is None:
                yield IDLE
                continue
            if future.cancelled() or (cancelled is not None and _asks_cancel(cancelled)):
                _give_up(future)  # gave up while waiting: never takes a slot
                continue
            self._pending[self._entered] = future
            if cancelled is not None:
                self._cancel_checks[self._entered] = cancelled
            self._entered += 1
            yield encoded

    def _dropped(self, indices: np.ndarray) -> np.ndarray:
        """Which running puzzles (by result index) were given up: their slots are freed."""
        gone = np.zeros(len(indices), dtype=bool)
        now = time.monotonic()
        if now - self._last_check < CANCEL_CHECK_S:
            return gone
        self._last_check = now
        for i, index in enumerate(indices.tolist()):
            future = self._pending.get(index)
            check = self._cancel_checks.get(index)
            if future is not None and (future.cancelled() or (check is not None and _asks_cancel(check))):
                gone[i] = True
                self._pending.pop(index)
                self._cancel_checks.pop(index, None)
                _give_up(future)
        return gone

    def _wait(self) -> None:
        with self._cond:
            self._cond.wait_for(lambda: bool(self._waiting) or self._closed)

    def _work(self) -> None:
        try:
            for result in self.solver.run_source(self._source(), wait=self._wait, dropped=self._dropped):
                self._cancel_checks.pop(result.index, None)
                future = self._pending.pop(result.index)
                if not future.done():  # a caller may have cancelled it a moment ago
                    future.set_result(result)
        except BaseException as exc:  # the backend failed: no caller may wait forever
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(exc)
            with self._cond:
                self._failed = exc  # later submits fail at once instead of waiting for a dead loop
                for _, future, _ in self._waiting:
                    if not future.done():
                        future.set_exception(exc)
                self._waiting.clear()
                self._cond.notify_all()
            raise


def _asks_cancel(check: Callable[[], bool]) -> bool:
    try:
        return bool(check())
    except Exception:  # a broken check must not kill the loop; the puzzle runs on
        return False


def _give_up(future: Future[Result]) -> None:
    """Cancel, and wake whoever waits on it (concurrent.futures.wait learns of a cancellation only
    through set_running_or_notify_cancel)."""
    future.cancel()
    with contextlib.suppress(RuntimeError):  # already notified
        future.set_running_or_notify_cancel()
