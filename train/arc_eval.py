"""ARC scoring during training: the official vote over the versions in a test split built by build_arc.

The vote itself (crop, map back, rank by votes then mean halting probability) is
`trm_edge.tasks.arc_vote`, the same code the runtime votes with.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from trm_edge.tasks.arc_versions import ArcVersion
from trm_edge.tasks.arc_vote import Ballot, crop, grid_key, pass_at_k
from trm_edge.train.dataset import Split

CANVAS = 30


def split_version(split: Split, i: int) -> ArcVersion:
    """The version example i of a build_arc test split was made with (its task name aside)."""
    colours = tuple(int(c) for c in split.arrays["colours"][i])
    return ArcVersion("task", int(split.arrays["dihedral"][i]), colours)


def arc_pass_at_k(
    split: Split, answers: np.ndarray, q_halt: np.ndarray, ks: tuple[int, ...] = (1, 2)
) -> dict[str, float]:
    """{'pass@1': ..., 'pass@2': ..., 'tasks': n}; q_halt holds the q_halt logits of the answers."""
    a = split.arrays
    # Votes pool per test input, as the official evaluator keys them (by the input grid).
    ballots: dict[int, dict[bytes, Ballot]] = defaultdict(dict)
    truths: dict[int, dict[bytes, np.ndarray]] = defaultdict(dict)
    order: dict[int, int] = defaultdict(int)
    for i in range(len(split)):
        task = int(a["task_index"][i])
        version = split_version(split, i)
        source = version.inverse(crop(split.inputs[i], CANVAS))
        key = grid_key(source)
        ballot = ballots[task].setdefault(key, Ballot())
        ballot.add_prediction(answers[i], version, float(q_halt[i]), order[task], CANVAS)
        order[task] += 1
        truths[task][key] = version.inverse(crop(split.labels[i], CANVAS))
    tasks = [(list(by_input.values()), [truths[task][key] for key in by_input]) for task, by_input in ballots.items()]
    return pass_at_k(tasks, ks)
