"""Continuous batching for concurrent callers (web handlers, worker threads).

    feed = SolverFeed(Solver.load("export_dir", max_batch=16)).start()
    result = feed.submit("53..7....").result(timeout=5)     # from any thread
    feed.close()

Callers submit puzzles and get futures; one worker thread runs the solver's loop over whatever
is waiting. A puzzle that arrives while others are mid-flight takes the next free slot at the
next step, and in-flight puzzles never wait for new arrivals. A malformed puzzle is rejected in
`submit` (PuzzleError) and never reaches the loop.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

import numpy as np

from trm_edge.runtime.solver import IDLE, Puzzle, Result, Solver


class SolverFeed:
    def __init__(self, solver: Solver) -> None:
        self.solver = solver
        self._waiting: deque[tuple[Any, Future[Result]]] = deque()
        self._pending: dict[int, Future[Result]] = {}  # by the loop's result index (order of entry)
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

    def submit_encoded(self, encoded: tuple[np.ndarray, int]) -> Future[Result]:
        """Submit a puzzle already checked by `solver.encode`."""
        future: Future[Result] = Future()
        with self._cond:
            if self._failed is not None:
                raise RuntimeError(f"this SolverFeed's solver failed: {self._failed}")
            if self._closed:
                raise RuntimeError("this SolverFeed is closed")
            self._waiting.append((encoded, future))
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
                    encoded, future = self._waiting.popleft()
                    self._cond.notify_all()  # room for callers in wait_for_room
                elif self._closed:
                    return
                else:
                    encoded = None
            if encoded is None:
                yield IDLE
                continue
            self._pending[self._entered] = future
            self._entered += 1
            yield encoded

    def _wait(self) -> None:
        with self._cond:
            self._cond.wait_for(lambda: bool(self._waiting) or self._closed)

    def _work(self) -> None:
        try:
            for result in self.solver._run(self._source(), wait=self._wait):
                self._pending.pop(result.index).set_result(result)
        except BaseException as exc:  # the backend failed: no caller may wait forever
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(exc)
            with self._cond:
                self._failed = exc  # later submits fail at once instead of waiting for a dead loop
                for _, future in self._waiting:
                    future.set_exception(exc)
                self._waiting.clear()
                self._cond.notify_all()
            raise
