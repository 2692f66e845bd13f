"""ARC answers by vote over versions, scored as the official evaluator scores them.

Each version's prediction is cropped (the largest top-left rectangle of colour tokens), mapped
back by the version's inverse transform, and counted for the test input it answers; identical
grids pool their votes. A trajectory (a version run again, its latent state nudged: runtime/arc.py)
votes like a version. ARC has no verifier, so a rule chooses among the candidates:

- `vote` (the official ranking, the default): most votes, then the highest mean halting
  probability (sigmoid of q_halt) of their voters, then the earliest voter;
- `confidence`: the highest halting probability of any one voter (the answer the model was
  surest of, however few gave it), then most votes, then the earliest voter;
- `both`: votes weighted by halting probability (the sum of the voters' probabilities: a vote
  counts as much as its voter is confident), then most votes, then the earliest voter.

The earliest voter: answers given without noise before trajectories', then version order
(identity first). pass@k: a test input counts if its true output is among the top k; a task
scores the share of its test inputs counted; the score is the mean over tasks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from trm_edge.errors import TrmEdgeError
from trm_edge.tasks.arc import COLOUR0
from trm_edge.tasks.arc_versions import ArcVersion

ATTEMPTS = 2  # Kaggle's ARC Prize takes two attempts per test input
RULES = ("vote", "confidence", "both")
DEFAULT_RULE = "vote"  # the official ranking: what solve-arc did before trajectories


def crop(tokens: np.ndarray, size: int) -> np.ndarray:
    """The official crop of a predicted canvas: the largest-area rectangle anchored top-left whose
    cells are all colour tokens, as colours 0-9 (possibly 0x0)."""
    canvas = np.asarray(tokens).reshape(size, size)
    is_colour = (canvas >= COLOUR0) & (canvas <= COLOUR0 + 9)
    best_area, best = 0, (0, 0)
    width = size
    for rows in range(1, size + 1):
        # The row's run of colours from column 0 caps the width of every taller rectangle.
        bad = np.flatnonzero(~is_colour[rows - 1, :width])
        if bad.size:
            width = int(bad[0])
        if rows * width > best_area:
            best_area, best = rows * width, (rows, width)
    return (canvas[: best[0], : best[1]] - COLOUR0).astype(np.int64)


def grid_key(grid: np.ndarray) -> bytes:
    """Identical grids (shape and colours) give identical keys."""
    g = np.asarray(grid)
    return np.array(g.shape, np.int64).tobytes() + g.astype(np.int8).tobytes()


def halt_probability(q_halt_logit: float) -> float:
    return float(1.0 / (1.0 + np.exp(-np.float64(q_halt_logit))))


@dataclass
class Candidate:
    grid: np.ndarray  # colours 0-9, in the task's own frame
    votes: int = 0
    q_sum: float = 0.0  # sum of the voters' halting probabilities
    q_best: float = 0.0  # the highest halting probability of any one voter
    nudged_votes: int = 0  # votes of trajectories (runs whose state was nudged)
    first: tuple[int, int] = (0, 0)  # (trajectory, version order) of the earliest voter: the last tie-break

    @property
    def mean_q(self) -> float:
        return self.q_sum / self.votes if self.votes else 0.0

    def to_json(self) -> dict[str, object]:
        return {"grid": self.grid.tolist(), "votes": self.votes, "nudged_votes": self.nudged_votes,
                "mean_halt_probability": round(self.mean_q, 6), "best_halt_probability": round(self.q_best, 6)}


# Each rule's sort key, smallest first (the module doc says them in words).
RANKINGS: dict[str, Callable[[Candidate], tuple[float, ...]]] = {
    "vote": lambda c: (-c.votes, -c.mean_q, *c.first),
    "confidence": lambda c: (-c.q_best, -c.votes, *c.first),
    "both": lambda c: (-c.q_sum, -c.votes, *c.first),
}


def check_rule(rule: str) -> str:
    if rule not in RULES:
        raise TrmEdgeError(f"the choosing rule is one of {', '.join(RULES)}, not {rule!r}")
    return rule


@dataclass
class Ballot:
    """The votes for one test input, ranked by `rule` (one of RULES)."""

    candidates: dict[bytes, Candidate] = field(default_factory=dict)
    voters: int = 0
    rule: str = DEFAULT_RULE

    def __post_init__(self) -> None:
        check_rule(self.rule)

    def add(self, grid: np.ndarray, q_halt_logit: float, order: int, trajectory: int = 0) -> None:
        """One answer, already mapped back: of the version at place `order` (identity 0), as given
        (`trajectory` 0) or nudged (its trajectory's number, from 1)."""
        key = grid_key(grid)
        candidate = self.candidates.get(key)
        if candidate is None:
            candidate = self.candidates[key] = Candidate(np.asarray(grid), first=(trajectory, order))
        q = halt_probability(q_halt_logit)
        candidate.votes += 1
        candidate.q_sum += q
        candidate.q_best = max(candidate.q_best, q)
        candidate.nudged_votes += trajectory > 0
        candidate.first = min(candidate.first, (trajectory, order))
        self.voters += 1

    def add_prediction(
        self, tokens: np.ndarray, version: ArcVersion, q_halt_logit: float, order: int, size: int
    ) -> None:
        """A version's predicted canvas, cropped and mapped back, as a vote."""
        self.add(version.inverse(crop(tokens, size)), q_halt_logit, order)

    def ranked(self) -> list[Candidate]:
        return sorted(self.candidates.values(), key=RANKINGS[self.rule])

    def attempts(self, k: int = ATTEMPTS) -> list[np.ndarray]:
        """The top k grids, padded with the first (as the official submission is)."""
        top = [c.grid for c in self.ranked()[:k]]
        if not top:
            return []
        return top + [top[0]] * (k - len(top))

    def solved_at(self, truth: np.ndarray, k: int) -> bool:
        key = grid_key(np.asarray(truth))
        return any(grid_key(c.grid) == key for c in self.ranked()[:k])


def pass_at_k(
    tasks: Iterable[tuple[Sequence[Ballot], Sequence[np.ndarray]]], ks: Sequence[int] = (1, 2)
) -> dict[str, float]:
    """{'pass@k': ..., 'tasks': n} over tasks given as (ballot per test input, true output per test input)."""
    per_task: list[list[float]] = []
    for ballots, truths in tasks:
        per_task.append([float(np.mean([b.solved_at(t, k) for b, t in zip(ballots, truths, strict=True)])) for k in ks])
    scores = np.array(per_task, dtype=np.float64).reshape(-1, len(ks))
    result = {f"pass@{k}": float(scores[:, i].mean()) if len(scores) else 0.0 for i, k in enumerate(ks)}
    result["tasks"] = float(len(per_task))
    return result
