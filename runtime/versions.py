"""Test-time versions: a hard puzzle asked in several versions at once; the first verified answer wins.

A model that fails a puzzle often solves the same puzzle relabelled or reflected, and a verified
answer (a valid Sudoku keeping the givens, a shortest maze path) mapped back is a verified answer
of the puzzle: no label needed, never wrong. So each puzzle starts as its plain version; once every
plain version has been asked, the slots that free up go to further versions of the puzzles that
have not verified yet (`versions` of them at most, drawn from a seed by the task's symmetry group).
The moment one version verifies, the puzzle is answered and its other versions are dropped from
their slots. A puzzle none of whose versions verifies is answered by the version whose own halting
head was confident earliest, else by the majority of the versions' answers, and says so.

Everything runs in the solver's one continuous-batching loop (`Solver.run_source`), so the batch
stays full of whatever work is left.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from trm_edge.errors import TrmEdgeError
from trm_edge.runtime.solver import IDLE, Result, Solver
from trm_edge.tasks.symmetry import TokenSymmetry

RULES = ("verified", "confident halt", "majority")


@dataclass
class VersionedResult:
    index: int  # position of the puzzle in the input
    answer: np.ndarray  # (seq_len,) answer tokens in the puzzle's own frame
    verified: bool
    rule: str  # what chose the answer: verified | confident halt | majority
    version: int  # the version that gave it (0: the puzzle as given)
    steps: int  # steps of that version
    version_steps: int  # steps of every version run for this puzzle, dropped ones included
    versions_run: int
    halt_confidence: float
    latency_s: float  # from the puzzle's first version entering a slot to its answer
    puzzle: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0, np.int32))
    text: str | None = None


@dataclass
class _Puzzle:
    tokens: np.ndarray
    ident: int
    issued: int = 0  # versions started
    finished: list[tuple[int, Result]] = field(default_factory=list)  # (version, result) of ended versions
    steps_spent: int = 0
    entered: float = field(default_factory=time.perf_counter)


class VersionedRun:
    """Puzzles solved with up to `versions` versions each (see the module doc).

    Memory stays flat on a stream: at most `window` puzzles (default twice the solver's capacity)
    are open at once; a new puzzle enters only when there is room, and each answered puzzle's
    state is dropped as soon as its result is handed back."""

    def __init__(
        self, solver: Solver, versions: int, seed: int = 0, window: int | None = None, parallel: int = 1
    ) -> None:
        codec = solver.codec
        if solver.verifier is None or codec is None:
            raise TrmEdgeError(
                f"versions need answers the task can verify and a symmetry group; this model's task "
                f"{solver.meta.task!r} has {'no verifier' if solver.verifier is None else 'no codec'}"
            )
        if not solver.policy.verified:
            raise TrmEdgeError("versions need verified halting (--halt auto or verified...): the first verified "
                               f"version wins, but this solver halts by {solver.policy.name}")
        self.solver = solver
        self.symmetries: list[TokenSymmetry] = codec.symmetries(versions, seed)
        self.window = window or 2 * solver.slots
        # Versions of one puzzle in flight at once. 1 (the default) is the cheapest: a version starts
        # only when the previous one ended unverified. More cut a hard puzzle's latency where slots
        # are cheap (a GPU with room in its batch), at the cost of versions dropped half-way.
        if parallel < 1:
            raise TrmEdgeError(f"parallel versions must be at least 1, got {parallel}")
        self.parallel = parallel
        self.jobs: dict[int, tuple[int, int]] = {}  # running job index -> (puzzle, version)
        self.open: dict[int, _Puzzle] = {}  # puzzles entered and not yet answered
        self.answered: list[VersionedResult] = []  # answers not yet handed back
        self._next_job = 0
        self.dropped_versions = 0  # versions dropped from their slots because another one verified
        self.most_open = 0  # the largest number of puzzles open at once (bounded by `window`)

    def solve(self, puzzles: Sequence[tuple[np.ndarray, int]]) -> list[VersionedResult]:
        """Encoded puzzles ((tokens, id), as `Solver.encode` gives) -> one result each, in order."""
        return sorted(self.solve_stream(iter(puzzles)), key=lambda r: r.index)

    def solve_stream(self, puzzles: Iterator[tuple[np.ndarray, int]]) -> Iterator[VersionedResult]:
        """Results as puzzles are answered (`index` says which)."""
        for result in self.solver.run_source(self._source(puzzles), dropped=self._dropped):
            self._finished(result)
            yield from self.answered
            self.answered.clear()

    # --- scheduling -----------------------------------------------------------------------
    def _source(self, puzzles: Iterator[tuple[np.ndarray, int]]) -> Iterator[object]:
        """Plain versions of new puzzles while there is room; otherwise (or once the input is
        exhausted) further versions of the open puzzles with the fewest versions in flight; IDLE while
        only running versions are left."""
        entered = 0
        exhausted = False
        while True:
            if not exhausted and len(self.open) < self.window:
                item = next(puzzles, None)
                if item is not None:
                    tokens, ident = item
                    self.open[entered] = _Puzzle(np.asarray(tokens), int(ident))
                    self.most_open = max(self.most_open, len(self.open))
                    entered += 1
                    yield self._issue(entered - 1)
                    continue
                exhausted = True
            # A puzzle widens only once its plain version ended unverified: an easy puzzle never pays.
            waiting = [n for n, p in self.open.items() if p.finished and p.issued < len(self.symmetries)
                       and p.issued - len(p.finished) < self.parallel]
            if waiting:
                yield self._issue(min(waiting, key=lambda k: (self.open[k].issued, k)))
            elif self.open or not exhausted:
                yield IDLE  # versions are running: step them, then look again
            else:
                return

    def _issue(self, n: int) -> tuple[np.ndarray, int]:
        puzzle = self.open[n]
        version = puzzle.issued
        puzzle.issued += 1
        self.jobs[self._next_job] = (n, version)
        self._next_job += 1
        tokens = self.symmetries[version].forward(puzzle.tokens).astype(np.int32)
        return tokens, puzzle.ident

    def _dropped(self, running: np.ndarray) -> np.ndarray:
        """Called before every step with the running jobs: count the step each is about to take, and
        drop the versions of puzzles already answered."""
        gone = np.zeros(len(running), dtype=bool)
        for k, job in enumerate(running.tolist()):
            puzzle = self.open.get(self.jobs[job][0])
            if puzzle is None:
                gone[k] = True
                del self.jobs[job]
                self.dropped_versions += 1
            else:
                puzzle.steps_spent += 1
        return gone

    # --- answers ------------------------------------------------------------------------
    def _finished(self, result: Result) -> None:
        n, version = self.jobs.pop(result.index)
        puzzle = self.open.get(n)
        if puzzle is None:  # answered already by another version
            return
        puzzle.finished.append((version, result))
        if result.verified:
            self._answer(n, puzzle, version, result, "verified")
        elif len(puzzle.finished) == len(self.symmetries):
            version, chosen, rule = _fallback(puzzle.finished, self.symmetries)
            self._answer(n, puzzle, version, chosen, rule)

    def _answer(self, n: int, puzzle: _Puzzle, version: int, result: Result, rule: str) -> None:
        answer = self.symmetries[version].inverse(result.answer).astype(np.int32)
        codec = self.solver.codec
        self.answered.append(VersionedResult(
            index=n, answer=answer, verified=bool(result.verified), rule=rule, version=version,
            steps=result.steps, version_steps=puzzle.steps_spent, versions_run=puzzle.issued,
            halt_confidence=result.halt_confidence, latency_s=time.perf_counter() - puzzle.entered,
            puzzle=puzzle.tokens,
            text=codec.decode(answer) if codec is not None else None,
        ))
        del self.open[n]


def _fallback(finished: list[tuple[int, Result]], symmetries: list[TokenSymmetry]) -> tuple[int, Result, str]:
    """No version verified: the one whose halting head was confident (> 0.5) at the fewest steps;
    else the answer most versions gave (mapped back), the earliest version among them."""
    confident = [(r.steps, v, r) for v, r in finished if r.halt_confidence > 0.5]
    if confident:
        _, version, result = min(confident, key=lambda c: (c[0], c[1]))
        return version, result, "confident halt"
    back = {v: symmetries[v].inverse(r.answer).tobytes() for v, r in finished}
    counts = Counter(back.values())
    best = max(counts.values())
    version, result = min(((v, r) for v, r in finished if counts[back[v]] == best), key=lambda vr: vr[0])
    return version, result, "majority"
