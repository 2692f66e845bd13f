"""The loop: run each puzzle until it halts, keep the batch full, hand results back as they finish.

    solver = Solver.load("sudoku_fp32_export")
    for result in solver.solve_stream(puzzles):   # any iterable of puzzle text or tokens
        print(result.index, result.text, result.steps)

A fixed number of slots (the batch) runs on the backend. When a puzzle in a slot halts (its own
rule, or max_steps, which always bounds the loop), its result is emitted and the next waiting
puzzle takes the slot at once: a stream keeps the batch full (continuous batching). A slot that
takes a new puzzle restarts from the initial state inside the graph, so a puzzle's answer does not
depend on what else is in the batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trm_edge.errors import TrmEdgeError
from trm_edge.runtime.backend import Backend, create_backend
from trm_edge.runtime.export_dir import read_metadata
from trm_edge.runtime.halting import (
    HaltPolicy,
    count_unchanged,
    decide,
    halt_probability,
    halt_score,
    parse_policy,
)
from trm_edge.tasks import Codec, PuzzleError, get_codec

# A puzzle: its text (read by the task codec), its tokens, or either with a puzzle identifier.
Puzzle = str | np.ndarray | tuple[str | np.ndarray, int]
# What a live source (runtime.feed) yields when no puzzle is waiting: keep stepping the others.
IDLE = object()


@dataclass
class Result:
    index: int  # position of the puzzle in the input
    answer: np.ndarray  # (seq_len,) int32 answer tokens
    steps: int  # supervision steps taken
    halt_confidence: float  # sigmoid of the halting score at the last step
    halt_logit: float  # q_halt at the last step
    latency_s: float  # from entering a slot to halting
    puzzle: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0, np.int32))
    text: str | None = None  # the answer in the task's text format, when the model has a codec


class Solver:
    def __init__(
        self, export_dir: Path, meta: dict[str, Any], backend: Backend, policy: HaltPolicy, max_steps: int
    ) -> None:
        self.export_dir = export_dir
        self.meta = meta
        self.backend = backend
        self.policy = policy
        self.max_steps = max_steps
        self.rule = meta["halting"]["rule"]
        self.seq_len = meta["model"]["seq_len"]
        self.vocab_size = meta["model"]["vocab_size"]
        self.num_puzzle_ids = meta["model"]["num_puzzle_identifiers"]
        try:
            self.codec: Codec | None = get_codec(meta["task"]["name"], meta["task"].get("options"))
        except TrmEdgeError:
            self.codec = None

    @classmethod
    def load(
        cls,
        export_dir: str | Path,
        backend: str = "auto",
        max_batch: int = 64,
        max_steps: int | None = None,
        halt: str = "auto",
        threads: int | None = None,
    ) -> Solver:
        """Open an export directory on a backend (auto: the fastest available here).

        halt: "auto" (the calibrated policy if trm_edge.json has one, else the model's rule),
        "calibrated", "model", "fixed:N", "threshold:P", "stable:K" or "threshold:P,stable:K".
        max_steps bounds every puzzle (default: the model's halt_max_steps).
        """
        export_dir = Path(export_dir)
        meta = read_metadata(export_dir)
        if max_batch < 1:
            raise TrmEdgeError(f"max_batch must be at least 1, got {max_batch}")
        limit = meta["halting"]["max_steps"] if max_steps is None else max_steps
        if limit < 1:
            raise TrmEdgeError(f"max_steps must be at least 1, got {limit}")
        policy = resolve_policy(halt, meta)
        if policy.fixed_steps is not None:
            limit = max(limit, policy.fixed_steps) if max_steps is None else limit
        return cls(export_dir, meta, create_backend(backend, export_dir, meta, max_batch, threads), policy, limit)

    @property
    def backend_name(self) -> str:
        return self.backend.name

    # --- inputs ---------------------------------------------------------------------------
    def encode(self, puzzle: Puzzle, index: int = 0) -> tuple[np.ndarray, int]:
        """(tokens, puzzle id) for one puzzle, checked; PuzzleError naming the puzzle if malformed."""
        ident = 0
        if isinstance(puzzle, tuple):
            puzzle, ident = puzzle
        try:
            if isinstance(puzzle, str):
                if self.codec is None:
                    raise PuzzleError(
                        f"this model's task {self.meta['task']['name']!r} has no text format: pass tokens"
                    )
                tokens = self.codec.encode(puzzle)
            else:
                tokens = np.asarray(puzzle)
                if tokens.shape != (self.seq_len,) or tokens.dtype.kind not in "iu":
                    raise PuzzleError(
                        f"tokens must be {self.seq_len} integers, got shape {tokens.shape} of {tokens.dtype}"
                    )
                if tokens.min() < 0 or tokens.max() >= self.vocab_size:
                    raise PuzzleError(f"tokens must lie in [0, {self.vocab_size})")
            if not 0 <= int(ident) < self.num_puzzle_ids:
                raise PuzzleError(f"puzzle identifier {ident} is outside [0, {self.num_puzzle_ids})")
        except PuzzleError as exc:
            raise PuzzleError(f"puzzle {index}: {exc}") from None
        return tokens.astype(np.int32), int(ident)

    # --- the loop -------------------------------------------------------------------------
    def solve(self, puzzles: Sequence[Puzzle]) -> list[Result]:
        """Solve a list; results in input order. Every puzzle is checked before any is run."""
        return self.solve_encoded([self.encode(p, i) for i, p in enumerate(puzzles)])

    def solve_encoded(self, encoded: Sequence[tuple[np.ndarray, int]]) -> list[Result]:
        """Like `solve`, for puzzles already checked by `encode` (servers check each request first)."""
        return sorted(self._run(iter(encoded), known_count=len(encoded)), key=lambda r: r.index)

    def solve_stream(self, puzzles: Iterable[Puzzle]) -> Iterator[Result]:
        """Results as puzzles finish (not in input order; `Result.index` says which)."""
        return self._run(self.encode(p, i) for i, p in enumerate(puzzles))

    def _run(
        self,
        source: Iterator[Any],
        known_count: int | None = None,
        wait: Callable[[], None] | None = None,
    ) -> Iterator[Result]:
        """The loop over `source` (encoded puzzles; a live source may also yield IDLE, and then
        `wait` blocks until it has a puzzle again whenever every slot is empty)."""
        slots = self.backend.batch
        resizable = self.meta["batch"]["dynamic"] and getattr(self.backend, "can_compact", False)
        if resizable and known_count is not None and 0 < known_count < slots:
            self.backend.resize(known_count)  # no point stepping empty slots
        try:
            yield from self._loop(source, resizable, wait)
        finally:
            if self.backend.batch != slots:
                self.backend.resize(slots)

    def _loop(self, source: Iterator[Any], resizable: bool, wait: Callable[[], None] | None) -> Iterator[Result]:
        b = self.backend.batch
        tokens = np.zeros((b, self.seq_len), dtype=np.int32)
        ids = np.zeros(b, dtype=np.int32)
        active = np.zeros(b, dtype=bool)
        index = np.full(b, -1, dtype=np.int64)
        steps = np.zeros(b, dtype=np.int64)
        unchanged = np.zeros(b, dtype=np.int64)
        started = np.zeros(b, dtype=np.float64)
        previous = np.zeros((b, self.seq_len), dtype=np.int32)
        reset = np.zeros(b, dtype=bool)
        next_index = 0
        exhausted = False
        while True:
            refilled = False
            for slot in np.flatnonzero(~active):
                if exhausted:
                    break
                item = next(source, None)
                if item is None:
                    exhausted = True
                    break
                if item is IDLE:
                    break
                tokens[slot], ids[slot] = item
                active[slot], reset[slot], refilled = True, True, True
                index[slot], steps[slot], unchanged[slot] = next_index, 0, 0
                started[slot] = time.perf_counter()
                next_index += 1
            if not active.any():
                if exhausted or wait is None:
                    return
                wait()
                continue
            if refilled:
                self.backend.set_inputs(tokens, ids)
            answer, q_halt, q_cont = self.backend.step(reset)
            reset[:] = False
            steps[active] += 1
            same = (answer == previous).all(axis=1)
            unchanged = count_unchanged(unchanged, same, steps == 1)
            previous[...] = answer
            score = halt_score(self.rule, q_halt, q_cont)
            done = active & decide(self.policy, score, steps, unchanged, self.max_steps)
            now = time.perf_counter()
            for slot in np.flatnonzero(done):
                out = answer[slot].copy()
                yield Result(
                    index=int(index[slot]),
                    answer=out,
                    steps=int(steps[slot]),
                    halt_confidence=float(halt_probability(score[slot])),
                    halt_logit=float(q_halt[slot]),
                    latency_s=now - started[slot],
                    puzzle=tokens[slot].copy(),
                    text=self.codec.decode(out) if self.codec is not None else None,
                )
            active &= ~done
            if resizable and exhausted and 0 < active.sum() <= b // 2:
                # The stream has run dry: move the remaining puzzles into a smaller batch.
                keep = np.flatnonzero(active)
                self.backend.compact(keep)
                b = len(keep)
                tokens, ids, index, steps = tokens[keep], ids[keep], index[keep], steps[keep]
                unchanged, started, previous = unchanged[keep], started[keep], previous[keep]
                active, reset = active[keep], reset[keep]
                self.backend.set_inputs(tokens, ids)


def resolve_policy(halt: str, meta: dict[str, Any]) -> HaltPolicy:
    calibrated = meta["halting"].get("policy")
    if halt == "auto":
        return parse_policy(calibrated) if calibrated else HaltPolicy(model_rule=True)
    if halt == "calibrated":
        if not calibrated:
            raise TrmEdgeError(
                "this export has no calibrated halting policy: run 'trm-edge calibrate "
                "EXPORT_DIR --data HELD_OUT.npz' first, or pick one (model, stable:2, ...)"
            )
        return parse_policy(calibrated)
    return parse_policy(halt)
