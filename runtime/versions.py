"""Test-time versions: a hard puzzle asked in several versions at once; the first verified answer wins.

A model that fails a puzzle often solves the same puzzle relabelled or reflected, or run again
with its latent state nudged by noise, and a verified answer (a valid Sudoku keeping the givens, a
shortest maze path) mapped back is a verified answer of the puzzle: no label needed, never wrong.
So each puzzle starts as its plain version; once every plain version has been asked, the slots that
free up go to further versions of the puzzles that have not verified yet. A version is of a `kind`:
`symmetries` (the task's symmetry group, drawn from a seed), `trajectories` (the puzzle as given,
its state nudged by seeded noise: runtime/trajectories.py), `both` (a symmetry, nudged) or `auto`
(symmetries while the group has new ones, then nudged ones: a Sudoku's group never runs out, a
maze's 8 do: on Sudoku noise did not beat symmetries, and alone it solves half as many;
benchmarks/trajectories.py, docs/versions.md). A puzzle
gets `versions` of them at most, and with a `budget` at most that many version-steps: each version
runs at most what is left of it, so the steps go to the puzzles still unverified and none to those
that verified. The moment one version verifies, the puzzle is answered and its other versions are
dropped from their slots. A puzzle none of whose versions verifies is answered by the version whose
own halting head was confident earliest, else by the majority of the versions' answers, and says so.

Everything runs in the solver's one continuous-batching loop (`Solver.run_source`), so the batch
stays full of whatever work is left.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from trm_edge.errors import TrmEdgeError
from trm_edge.runtime.slots import SlotWork
from trm_edge.runtime.solver import IDLE, Result, Solver
from trm_edge.runtime.trajectories import Noise, Nudger
from trm_edge.tasks.symmetry import TokenSymmetry

RULES = ("verified", "confident halt", "majority")
KINDS = ("auto", "symmetries", "trajectories", "both")
# The kind a budget spends by default (chosen by measurement: benchmarks/trajectories.py).
DEFAULT_KIND = "auto"
# A version is not started with fewer steps than this left of the budget (step 1 almost never verifies).
FEWEST_VERSION_STEPS = 2


@dataclass
class VersionedResult:
    index: int  # position of the puzzle in the input
    answer: np.ndarray  # (seq_len,) answer tokens in the puzzle's own frame
    verified: bool
    rule: str  # what chose the answer: verified | confident halt | majority
    version: int  # the version that gave it (0: the puzzle as given)
    nudged: bool  # whether that version was a trajectory (its state nudged by noise)
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
    reserved: int = 0  # version-steps promised to its versions (a budget's share given out)
    entered: float = field(default_factory=time.perf_counter)


class VersionedRun:
    """Puzzles solved with up to `versions` versions each, of `kind`, within `budget` version-steps
    a puzzle (see the module doc; give versions, budget or both).

    Memory stays flat on a stream: at most `window` puzzles (default twice the solver's capacity)
    are open at once; a new puzzle enters only when there is room, and each answered puzzle's
    state is dropped as soon as its result is handed back."""

    def __init__(
        self, solver: Solver, versions: int | None = None, seed: int = 0, window: int | None = None,
        parallel: int = 1, *, budget: int | None = None, kind: str = DEFAULT_KIND, noise: Noise | None = None,
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
        if kind not in KINDS:
            raise TrmEdgeError(f"the kind of versions is one of {', '.join(KINDS)}, not {kind!r}")
        if versions is None and budget is None:
            raise TrmEdgeError("give versions (how many a puzzle) or budget (version-steps a puzzle), or both")
        if versions is not None and versions < 1:
            raise TrmEdgeError(f"versions must be at least 1, got {versions}")
        if budget is not None and budget < solver.max_steps:
            # Less would cut the puzzle as given short of its own steps: worse than no versions at all.
            raise TrmEdgeError(f"a budget of {budget} version-steps is less than one whole version ({solver.max_steps} "
                               f"steps, --max-steps): give at least {solver.max_steps}")
        if kind == "symmetries" and noise is not None:
            raise TrmEdgeError("symmetries are not nudged: leave the noise out, or ask for kind both or trajectories")
        self.solver = solver
        self.codec = codec
        self.seed = seed
        self.kind = kind
        self.noise = noise or Noise()
        self.budget = budget
        self.most_versions = versions  # None: as many as the budget pays for
        # Drawn as needed (a budget may pay for many): the first k of a longer draw are the same k.
        self.symmetries: list[TokenSymmetry] = codec.symmetries(versions or 8, seed)
        self._all_drawn = versions is not None and len(self.symmetries) == versions
        if kind == "symmetries" and versions is not None:
            self.most_versions = len(self.symmetries)  # a maze has 8 at most
        self.window = window or 2 * solver.slots
        # Versions of one puzzle in flight at once. 1 (the default) is the cheapest: a version starts
        # only when the previous one ended unverified. More cut a hard puzzle's latency where slots
        # are cheap (a GPU with room in its batch), at the cost of versions dropped half-way.
        if parallel < 1:
            raise TrmEdgeError(f"parallel versions must be at least 1, got {parallel}")
        self.parallel = parallel
        self.jobs: dict[int, tuple[int, int, int]] = {}  # running job index -> (puzzle, version, step bound)
        self.open: dict[int, _Puzzle] = {}  # puzzles entered and not yet answered
        self.answered: list[VersionedResult] = []  # answers not yet handed back
        self._next_job = 0
        self.dropped_versions = 0  # versions dropped from their slots because another one verified
        self.most_open = 0  # the largest number of puzzles open at once (bounded by `window`)

    def symmetry(self, version: int) -> TokenSymmetry:
        """The frame version `version` runs in: the identity for trajectories; else the version-th
        symmetry drawn (reused in turn, nudged, once a small group, a maze's 8, is used up)."""
        if self.kind == "trajectories":
            return self.symmetries[0]
        while version >= len(self.symmetries) and not self._all_drawn:
            wanted = 2 * len(self.symmetries)
            self.symmetries = self.codec.symmetries(wanted, self.seed)
            self._all_drawn = len(self.symmetries) < wanted
        return self.symmetries[version % len(self.symmetries)]

    def nudged(self, version: int) -> bool:
        if self.kind == "auto":  # once the group is used up (a Sudoku's never is)
            return self._all_drawn and version >= len(self.symmetries)
        return version > 0 and self.kind != "symmetries"

    def _room_for_another(self, puzzle: _Puzzle) -> bool:
        """Whether `puzzle` may start one more version (its plain one ended unverified)."""
        if self.most_versions is not None and puzzle.issued >= self.most_versions:
            return False
        if self.kind == "symmetries" and puzzle.issued >= len(self.symmetries):
            self.symmetry(puzzle.issued)  # draws more where the group has more
            if puzzle.issued >= len(self.symmetries):
                return False
        return self.budget is None or self.budget - puzzle.reserved >= FEWEST_VERSION_STEPS

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
            waiting = [n for n, p in self.open.items() if p.finished and p.issued - len(p.finished) < self.parallel
                       and self._room_for_another(p)]
            if waiting:
                yield self._issue(min(waiting, key=lambda k: (self.open[k].issued, k)))
            elif self.open or not exhausted:
                yield IDLE  # versions are running: step them, then look again
            else:
                return

    def _issue(self, n: int) -> SlotWork:
        puzzle = self.open[n]
        version = puzzle.issued
        puzzle.issued += 1
        bound = self.solver.max_steps
        if self.budget is not None:
            bound = min(bound, self.budget - puzzle.reserved)
        puzzle.reserved += bound
        self.jobs[self._next_job] = (n, version, bound)
        self._next_job += 1
        tokens = self.symmetry(version).forward(puzzle.tokens).astype(np.int32)
        nudger = Nudger((self.seed, n, version), self.noise) if self.nudged(version) else None
        return SlotWork(tokens, puzzle.ident, nudger, bound)

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
        n, version, bound = self.jobs.pop(result.index)
        puzzle = self.open.get(n)
        if puzzle is None:  # answered already by another version
            return
        puzzle.finished.append((version, result))
        puzzle.reserved -= bound - result.steps  # a version that stopped early gives back what it did not use
        if result.verified:
            self._answer(n, puzzle, version, result, "verified")
        elif puzzle.issued == len(puzzle.finished) and not self._room_for_another(puzzle):
            version, chosen, rule = _fallback(puzzle.finished, self.symmetry)
            self._answer(n, puzzle, version, chosen, rule)

    def _answer(self, n: int, puzzle: _Puzzle, version: int, result: Result, rule: str) -> None:
        answer = self.symmetry(version).inverse(result.answer).astype(np.int32)
        codec = self.solver.codec
        self.answered.append(VersionedResult(
            index=n, answer=answer, verified=bool(result.verified), rule=rule, version=version,
            nudged=self.nudged(version),
            steps=result.steps, version_steps=puzzle.steps_spent, versions_run=puzzle.issued,
            halt_confidence=result.halt_confidence, latency_s=time.perf_counter() - puzzle.entered,
            puzzle=puzzle.tokens,
            text=codec.decode(answer) if codec is not None else None,
        ))
        del self.open[n]


def _fallback(
    finished: list[tuple[int, Result]], symmetry: Callable[[int], TokenSymmetry]
) -> tuple[int, Result, str]:
    """No version verified: the one whose halting head was confident (> 0.5) at the fewest steps;
    else the answer most versions gave (mapped back), the earliest version among them."""
    confident = [(r.steps, v, r) for v, r in finished if r.halt_confidence > 0.5]
    if confident:
        _, version, result = min(confident, key=lambda c: (c[0], c[1]))
        return version, result, "confident halt"
    back = {v: symmetry(v).inverse(r.answer).tobytes() for v, r in finished}
    counts = Counter(back.values())
    best = max(counts.values())
    version, result = min(((v, r) for v, r in finished if counts[back[v]] == best), key=lambda vr: vr[0])
    return version, result, "majority"
