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
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trm_edge.contract.export_dir import read_metadata
from trm_edge.contract.halting_policy import HaltPolicy
from trm_edge.contract.metadata import ExportMetadata
from trm_edge.errors import PassedOverWarning, TrmEdgeError
from trm_edge.runtime.backends.base import Backend
from trm_edge.runtime.backends.choice import Choice, Opened, open_backend
from trm_edge.runtime.backends.registry import fixed_batch_error, fixed_batch_of
from trm_edge.runtime.export_task import cannot_verify_message, halting_and_limit, task_codec
from trm_edge.runtime.halting import count_unchanged, decide, halt_probability, halt_score
from trm_edge.runtime.options import DEFAULT_SLOTS, SolverOptions
from trm_edge.runtime.slots import Slots
from trm_edge.runtime.trajectories import nudge
from trm_edge.tasks import PuzzleError

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
    # The answer is a solution by the task's own rules (a valid Sudoku, a shortest maze path);
    # None when the task cannot verify answers (ARC).
    verified: bool | None = None

    @property
    def verified_code(self) -> int:
        """`verified` for integer outputs (npz, Triton): 1 verified, 0 not a solution, -1 cannot verify."""
        return -1 if self.verified is None else int(self.verified)


# A resizable backend starts with at most this many slots and widens only for puzzles that wait,
# so memory follows the work, not --slots.
INITIAL_WIDTH = 64


def slots_for(meta: ExportMetadata, asked: int | None, option: str | None = None) -> int:
    """The slots a solver opens for: `asked` (default DEFAULT_SLOTS), or a fixed-batch export's own
    batch, the only width it runs (fewer puzzles run in it padded). A command's `option` (--slots)
    must then name that batch or be left out; Python's slots, a bound, may also be less."""
    if meta.dynamic_batch:
        return DEFAULT_SLOTS if asked is None else asked
    fixed = fixed_batch_of(meta)
    if asked is None or asked == fixed or (option is None and asked < fixed):
        return fixed
    how = (f"give {option} {fixed} or leave it out" if option
           else f"open it with slots={fixed} or leave slots out (fewer puzzles run padded)")
    raise fixed_batch_error(meta, how)


class Solver:
    def __init__(
        self,
        export_dir: Path,
        meta: ExportMetadata,
        backend: Backend,
        policy: HaltPolicy,
        max_steps: int,
        slots: int | None = None,
    ) -> None:
        self.export_dir = export_dir
        self.meta = meta
        self.backend = backend
        self.policy = policy
        self.max_steps = max_steps
        # Slots at most; a resizable backend runs fewer when work is short and returns to its
        # starting width after each run.
        self.slots = max(slots or backend.width, backend.width)
        self.options = SolverOptions(slots=self.slots)  # load: the options it was opened with
        self.home_width = backend.width
        self._running = False
        # Called with the wall seconds of every backend step, when set (benchmarks time the loop
        # users embed with it).
        self.step_timer: Callable[[float], None] | None = None
        self.rule = meta.halting.rule
        self.seq_len = meta.model.seq_len
        self.vocab_size = meta.model.vocab_size
        self.num_puzzle_ids = meta.model.num_puzzle_identifiers
        self.codec = task_codec(meta)
        self.verifier = self.codec if self.codec is not None and self.codec.can_verify else None
        if policy.verified and self.verifier is None:
            raise TrmEdgeError(cannot_verify_message(meta))
        # Which backend and precision were chosen, and why earlier choices were passed over (load).
        self.choice: Choice | None = None
        self.choice_notes: list[str] = []
        self.opened: Opened | None = None  # with the figures auto measured, and the precision check

    @classmethod
    def load(
        cls,
        export_dir: str | Path,
        options: SolverOptions | None = None,
        *,
        meta: ExportMetadata | None = None,
        **settings: Any,
    ) -> Solver:
        """Open an export directory as `options` say (runtime/options.py; its fields may also be given
        as keywords, which change the options given): a backend (auto: the fastest available here)
        at a precision (auto: the export's, or a lower one the hardware runs natively once it passes
        its check; runtime/backends/choice.py), a halting rule, a step bound, threads and slots.

        A fixed-batch export (export --batch N) runs N slots, whatever fewer are asked. meta: the
        export's metadata where the caller has just read it (`read_metadata`: checking every file
        again would be the start-up's work done twice).
        """
        if options is not None and not isinstance(options, SolverOptions):  # the positional settings of old
            raise TrmEdgeError(f"Solver.load's second argument is a SolverOptions, not {options!r}: give settings "
                               "by name (Solver.load(dir, backend='ort-cpu')) or as SolverOptions(...)")
        options = (options or SolverOptions()).with_settings(**settings)
        export_dir = Path(export_dir)
        meta = meta or read_metadata(export_dir)
        slots = slots_for(meta, options.slots)
        policy, limit = halting_and_limit(meta, options.halt, options.max_steps)
        codec = task_codec(meta)
        verifier = codec if codec is not None and codec.can_verify else None
        # CPU backends change their width with the work (GPU backends keep theirs: set once, at slots).
        opened = open_backend(options.backend, export_dir, meta, slots, INITIAL_WIDTH, options.threads,
                              options.precision, verifier, options.measure)
        solver = cls(export_dir, meta, opened.backend, policy, limit, slots=slots)
        solver.options = options
        solver.choice, solver.choice_notes, solver.opened = opened.choice, opened.notes, opened
        for note in opened.notes:  # one line each, with the reason and the fix
            warnings.warn(f"{options.backend} {note}", PassedOverWarning, stacklevel=2)
        return solver

    @property
    def backend_name(self) -> str:
        return self.backend.name

    @property
    def engine(self) -> str:
        """What runs the steps, in words: backend, precision and form ('openvino bf16 streams:2')."""
        return self.choice.label if self.choice is not None else f"{self.backend.name} {self.precision}"

    @property
    def precision(self) -> str:
        """The precision the backend runs (the export's unless a backend lowered it)."""
        return self.choice.precision if self.choice is not None else self.meta.precision

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
                        f"this model's task {self.meta.task!r} has no text format: pass tokens"
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
        return sorted(self.run_source(iter(encoded), known_count=len(encoded)), key=lambda r: r.index)

    def solve_stream(self, puzzles: Iterable[Puzzle]) -> Iterator[Result]:
        """Results as puzzles finish (not in input order; `Result.index` says which)."""
        return self.run_source(self.encode(p, i) for i, p in enumerate(puzzles))

    def run_source(
        self,
        source: Iterator[Any],
        known_count: int | None = None,
        wait: Callable[[], None] | None = None,
        dropped: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> Iterator[Result]:
        """The loop over a source of encoded puzzles (`encode`'s (tokens, id)), for callers that
        feed it live (SolverFeed): the source may yield IDLE when nothing waits, and `wait` then
        blocks until it has a puzzle again whenever every slot is empty. `dropped`, given the result
        indices of the running puzzles before each step, says which to abandon (their callers gave
        up): their slots are freed without a result. `known_count` sizes the batch up front. An item
        may also be a `SlotWork` (runtime/slots.py): a puzzle with its own step bound or noise."""
        if self._running:
            raise TrmEdgeError(
                "this Solver is already running another solve (its slots hold that stream's puzzles): finish it "
                "first, use one Solver per concurrent stream, or share one through a SolverFeed"
            )
        self._running = True
        capacity = self.slots
        resizable = self.meta.dynamic_batch and self.backend.can_reslot
        if resizable and known_count:
            # As many slots as puzzles, up to capacity: no empty slots stepped, no memory for none.
            wanted = min(known_count, capacity)
            if wanted != self.backend.width:
                self.backend.resize(wanted)
        try:
            yield from self._loop(source, capacity, resizable, wait, dropped)
        finally:
            self._running = False
            if self.backend.width != self.home_width:
                self.backend.resize(self.home_width)

    def _loop(
        self,
        source: Iterator[Any],
        capacity: int,
        resizable: bool,
        wait: Callable[[], None] | None,
        dropped: Callable[[np.ndarray], np.ndarray] | None,
    ) -> Iterator[Result]:
        """Step every occupied slot until its puzzle halts; refill freed slots from `source`.

        With a resizable backend the batch follows the work: it shrinks to the puzzles still running
        when nothing is waiting (the tail of a list, a quiet moment for a server) and doubles, up to
        `capacity`, when puzzles wait and every slot is taken."""
        slots = Slots(self.backend.width, self.seq_len, self.max_steps)
        next_index = 0
        exhausted = False
        while True:
            refilled = idle = False
            free = np.flatnonzero(~slots.active).tolist()
            while not (exhausted or idle):
                if not free and not (resizable and slots.width < capacity):
                    break
                item = next(source, None)
                if item is None:
                    exhausted = True
                    break
                if item is IDLE:
                    idle = True
                    break
                if not free:  # puzzles are waiting and every slot is busy: widen the batch
                    width = slots.width
                    slots = self._reslot(slots, np.arange(width), min(capacity, 2 * width))
                    free = list(range(width, slots.width))
                slots.enter(free.pop(0), item, next_index)
                next_index += 1
                refilled = True
            if dropped is not None and slots.active.any():
                busy = np.flatnonzero(slots.active)
                slots.active[busy[dropped(slots.index[busy])]] = False
            running = int(slots.active.sum())
            if resizable and (idle or (exhausted and running)) and running <= slots.width // 2 and slots.width > 1:
                # Nothing waits: move the running puzzles into a smaller batch (an empty one keeps 1 slot).
                slots = self._reslot(slots, np.flatnonzero(slots.active), max(1, running))
                refilled = True
            if running == 0:
                if exhausted or wait is None:
                    return
                wait()
                continue
            if refilled:
                self.backend.set_inputs(slots.tokens, slots.ids)
            started = time.perf_counter()
            answer, q_halt, q_cont = self.backend.step(slots.reset)
            if self.step_timer is not None:
                self.step_timer(time.perf_counter() - started)
            yield from self._after_step(slots, answer, q_halt, q_cont)

    def _after_step(
        self, slots: Slots, answer: np.ndarray, q_halt: np.ndarray, q_cont: np.ndarray
    ) -> Iterator[Result]:
        slots.reset[:] = False
        slots.steps[slots.active] += 1
        same = (answer == slots.previous).all(axis=1)
        slots.unchanged = count_unchanged(slots.unchanged, same, slots.steps == 1)
        slots.previous[...] = answer
        score = halt_score(self.rule, q_halt, q_cont)
        verified = None
        if self.policy.verified:  # every running answer is checked, each step
            verified = self._verify(slots.tokens, answer, slots.active)
        done = slots.active & decide(self.policy, score, slots.steps, slots.unchanged, slots.limit, verified)
        if verified is None and self.verifier is not None:  # checked once, when the puzzle halts
            verified = self._verify(slots.tokens, answer, done)
        now = time.perf_counter()
        for slot in np.flatnonzero(done):
            out = answer[slot].copy()
            yield Result(
                index=int(slots.index[slot]),
                answer=out,
                steps=int(slots.steps[slot]),
                halt_confidence=float(halt_probability(score[slot])),
                halt_logit=float(q_halt[slot]),
                latency_s=now - slots.started[slot],
                puzzle=slots.tokens[slot].copy(),
                text=self.codec.decode(out) if self.codec is not None else None,
                verified=None if verified is None else bool(verified[slot]),
            )
        slots.active &= ~done
        nudged = [slot for slot in np.flatnonzero(slots.active & (slots.nudgers != None))  # noqa: E711 (elementwise)
                  if slots.nudgers[slot].due(int(slots.steps[slot]))]
        if nudged:  # trajectories: noise on the state the next step reads
            nudge(self.backend, np.asarray(nudged), [slots.nudgers[slot] for slot in nudged])

    def _verify(self, puzzles: np.ndarray, answers: np.ndarray, which: np.ndarray) -> np.ndarray:
        """Verification of the slots in `which` (False elsewhere)."""
        out = np.zeros(len(which), dtype=bool)
        if which.any() and self.verifier is not None:
            out[which] = self.verifier.verify(puzzles[which], answers[which])
        return out

    def _reslot(self, slots: Slots, keep: np.ndarray, width: int) -> Slots:
        """The batch at `width` slots holding the puzzles of `keep` (state carried over) first."""
        self.backend.reslot(keep, width)
        return slots.take(keep, width)
