"""ARC tasks answered as the official evaluation answers them: every version, one vote each.

    runner = ArcRunner(Solver.load("arc_export"))
    answers = runner.solve(read_arc_tasks("arc-agi_evaluation_challenges.json"), votes=8)
    submission(answers)                   # the Kaggle submission: two attempts per test input
    score(answers, tasks)                 # pass@1, pass@2 where the true outputs are known

Each test input of a task is asked once per version of the task the export knows (the names of
its puzzle identifiers, carried from the official `identifiers.json` or `trm-edge data arc`),
identity first, up to `votes` of them: the input moved into the version's frame, with the
version's puzzle identifier. All versions of all tasks share the solver's continuous-batching loop
and its halting policy. Each answer is cropped, mapped back and voted on (`trm_edge.tasks.arc_vote`).

Test-time compute beyond the versions: `ArcTrajectories(count=T)` asks each planned version T more
times, its latent state nudged by seeded noise (runtime/trajectories.py), and every trajectory's
answer is a vote on the same ballot. ARC has no verifier to pick the right one, so a rule does:
`vote`, `confidence` or `both` (arc_vote's doc). A trajectory's seed is drawn from (seed, task name,
test input, version place, trajectory number), so its answer does not depend on which other tasks
are asked, nor on T: the first trajectory of a T=3 run is the trajectory of a T=1 run.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from trm_edge.contract.export_dir import puzzle_names
from trm_edge.errors import TrmEdgeError
from trm_edge.runtime.slots import SlotWork
from trm_edge.runtime.solver import Solver
from trm_edge.runtime.trajectories import Noise, Nudger
from trm_edge.tasks.arc import ArcCodec
from trm_edge.tasks.arc_tasks import ArcTask
from trm_edge.tasks.arc_versions import ArcVersion, IdentifiedVersion, versions_by_task
from trm_edge.tasks.arc_vote import ATTEMPTS, DEFAULT_RULE, Ballot, check_rule, crop, pass_at_k
from trm_edge.tasks.base import PuzzleError

UNKNOWN_POLICIES = ("error", "identity")


@dataclass(frozen=True)
class ArcTrajectories:
    """Each planned version asked `count` more times, nudged by `noise` (0: none, as before)."""

    count: int = 0
    noise: Noise = field(default_factory=Noise)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.count < 0:
            raise TrmEdgeError(f"trajectories per version must be 0 or more, got {self.count}")
        if self.seed < 0:
            raise TrmEdgeError(f"the trajectories' seed must be 0 or more, got {self.seed}")

    @property
    def runs_per_version(self) -> int:
        return 1 + self.count

    def nudger(self, task: str, job: Job) -> Nudger | None:
        """Trajectory `job.trajectory`'s noise (None for the version as given), seeded by what
        names the run, not by its place in this call's job list."""
        if job.trajectory == 0:
            return None
        return Nudger((self.seed, zlib.crc32(task.encode()), job.test, job.order, job.trajectory), self.noise)


NO_TRAJECTORIES = ArcTrajectories()


@dataclass
class InputAnswer:
    ballot: Ballot  # the votes of every version (and trajectory) asked
    versions: int  # how many versions were asked
    trajectories: int = 0  # nudged runs of each version besides it

    def attempts(self, k: int = ATTEMPTS) -> list[np.ndarray]:
        return self.ballot.attempts(k)


@dataclass
class TaskAnswer:
    task: str
    tests: list[InputAnswer]  # one per test input, in order
    # The export knows no version of this task: asked once, as given, with puzzle identifier 0.
    unknown: bool = False


@dataclass(frozen=True)
class Job:
    task: int  # index into the task list
    test: int  # test input of that task
    order: int  # the version's place among the task's versions (identity 0)
    version: IdentifiedVersion
    trajectory: int = 0  # 0: the version as given; 1 on: its nudged runs


class ArcRunner:
    def __init__(self, solver: Solver) -> None:
        if not isinstance(solver.codec, ArcCodec):
            raise TrmEdgeError(
                f"this export's task is {solver.meta.task!r}: ARC tasks need a model trained on ARC"
            )
        self.solver = solver
        self.codec: ArcCodec = solver.codec
        self.versions = versions_by_task(puzzle_names(solver.meta))

    def plan(self, tasks: Sequence[ArcTask], votes: int | None, unknown: str) -> dict[str, list[IdentifiedVersion]]:
        """The versions each task will be asked in, identity first (`votes` of them; None: all)."""
        if unknown not in UNKNOWN_POLICIES:
            raise TrmEdgeError(f"unknown-task policy must be one of {', '.join(UNKNOWN_POLICIES)}, got {unknown!r}")
        if votes is not None and votes < 1:
            raise TrmEdgeError(f"votes must be at least 1 (or all), got {votes}")
        missing = [t.name for t in tasks if t.name not in self.versions]
        if missing and unknown == "error":
            raise TrmEdgeError(self._missing_message(missing, len(tasks)))
        plan = {}
        for task in tasks:
            known = self.versions.get(task.name)
            plan[task.name] = known[:votes] if known else [IdentifiedVersion(0, ArcVersion(task.name))]
        return plan

    def _missing_message(self, missing: list[str], total: int) -> str:
        if not self.versions:
            return (
                "this export carries no ARC version names, so no task can be asked with its own puzzle "
                "identifiers: convert the official checkpoint with --dataset (reads identifiers.json) or "
                "train with trm-edge data arc, then export again; --unknown-tasks identity answers every "
                "task as given with puzzle identifier 0 (far weaker)"
            )
        return (
            f"{len(missing)} of {total} tasks have no version in this export (first: {', '.join(missing[:5])}): "
            "the model never learnt their puzzle embeddings. Slice/export a checkpoint trained on them, or pass "
            "--unknown-tasks identity to answer them as given with puzzle identifier 0 (marked in the output)"
        )

    def count_runs(self, tasks: Sequence[ArcTask], plan: dict[str, list[IdentifiedVersion]],
                   trajectories: ArcTrajectories = NO_TRAJECTORIES) -> int:
        return trajectories.runs_per_version * sum(len(t.test) * len(plan[t.name]) for t in tasks)

    def solve(
        self,
        tasks: Sequence[ArcTask],
        votes: int | None = None,
        unknown: str = "error",
        progress: Callable[[int], None] | None = None,
        plan: dict[str, list[IdentifiedVersion]] | None = None,
        trajectories: ArcTrajectories = NO_TRAJECTORIES,
        rule: str = DEFAULT_RULE,
    ) -> list[TaskAnswer]:
        """Every planned version (and its trajectories) of every test input through the solver,
        then the vote by `rule` (`plan`: one `self.plan` already made for these tasks, so callers
        that showed it need not plan twice)."""
        check_rule(rule)  # before the runs, not after
        plan = plan if plan is not None else self.plan(tasks, votes, unknown)
        jobs, predictions = self.predict(tasks, plan, trajectories, progress)
        return tally(tasks, plan, jobs, predictions, known=set(self.versions), rule=rule)

    def predict(
        self, tasks: Sequence[ArcTask], plan: dict[str, list[IdentifiedVersion]],
        trajectories: ArcTrajectories = NO_TRAJECTORIES, progress: Callable[[int], None] | None = None,
    ) -> tuple[list[Job], list[Prediction]]:
        """Every run's answer, not yet voted on: callers that score one run by several rules or
        several T (benchmarks/arc_trajectories.py) tally them themselves."""
        jobs = plan_jobs(tasks, plan, trajectories.count)
        # Kept per run: the cropped answer (small), not the canvas (a full evaluation has ~400k runs).
        predictions: list[Prediction | None] = [None] * len(jobs)
        for result in self.solver.run_source(self._work(tasks, jobs, trajectories)):
            predictions[result.index] = Prediction(crop(result.answer, self.codec.size), result.halt_logit)
            if progress is not None:
                progress(1)
        missing = [i for i, p in enumerate(predictions) if p is None]
        if missing:  # the loop answers every job it is given; a gap is a bug, not a vote of None
            raise TrmEdgeError(f"internal error: {len(missing)} ARC runs came back without an answer")
        return jobs, [p for p in predictions if p is not None]

    def _work(
        self, tasks: Sequence[ArcTask], jobs: list[Job], trajectories: ArcTrajectories
    ) -> Iterator[tuple[np.ndarray, int] | SlotWork]:
        for index, job in enumerate(jobs):
            task = tasks[job.task]
            grid = job.version.version.forward(task.test[job.test][0])
            try:
                tokens = self.codec.encode_grid(grid.tolist())
            except PuzzleError as exc:
                raise PuzzleError(f"task {task.name}, test input {job.test}: {exc}") from None
            encoded = self.solver.encode((tokens.astype(np.int32), job.version.identifier), index)
            nudger = trajectories.nudger(task.name, job)
            yield encoded if nudger is None else SlotWork(*encoded, nudger)


@dataclass(frozen=True)
class Prediction:
    grid: np.ndarray  # the cropped answer, colours 0-9, in the version's frame
    q_halt_logit: float


def plan_jobs(tasks: Sequence[ArcTask], plan: dict[str, list[IdentifiedVersion]], trajectories: int = 0) -> list[Job]:
    """One run per (task, version, trajectory, test input), version by version, each version as
    given before its `trajectories` nudged runs."""
    return [
        Job(t, i, order, version, trajectory)
        for t, task in enumerate(tasks)
        for order, version in enumerate(plan[task.name])
        for trajectory in range(1 + trajectories)
        for i in range(len(task.test))
    ]


def tally(
    tasks: Sequence[ArcTask],
    plan: dict[str, list[IdentifiedVersion]],
    jobs: Sequence[Job],
    predictions: Sequence[Prediction],
    known: set[str],
    rule: str = DEFAULT_RULE,
) -> list[TaskAnswer]:
    """The vote by `rule`: each prediction mapped back to its task's frame and counted, in job order
    (so ties resolve the same way whatever order the runs finished in)."""
    trajectories = max((job.trajectory for job in jobs), default=0)
    answers = [
        TaskAnswer(task.name, [InputAnswer(Ballot(rule=rule), len(plan[task.name]), trajectories) for _ in task.test],
                   unknown=task.name not in known)
        for task in tasks
    ]
    for job, prediction in zip(jobs, predictions, strict=True):
        grid = job.version.version.inverse(prediction.grid)
        answers[job.task].tests[job.test].ballot.add(grid, prediction.q_halt_logit, job.order, job.trajectory)
    return answers


def submission(answers: Sequence[TaskAnswer], attempts: int = ATTEMPTS) -> dict[str, list[dict[str, Any]]]:
    """The Kaggle ARC Prize submission: per task, per test input in order, `attempt_1`, `attempt_2`."""
    return {
        a.task: [{f"attempt_{k + 1}": grid.tolist() for k, grid in enumerate(t.attempts(attempts))} for t in a.tests]
        for a in answers
    }


def score(answers: Sequence[TaskAnswer], tasks: Sequence[ArcTask], ks: Sequence[int] = (1, 2)) -> dict[str, float]:
    """pass@k over the tasks whose every test output is known (`tasks` gives the outputs)."""
    by_name = {t.name: t for t in tasks}
    scored = []
    for answer in answers:
        truths = [output for _, output in by_name[answer.task].test]
        if all(t is not None for t in truths):
            scored.append(([t.ballot for t in answer.tests], [np.asarray(t) for t in truths]))
    return pass_at_k(scored, ks)
