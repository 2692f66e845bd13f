"""ARC scoring as the official evaluator does it: pass@k by voting over augmented predictions.

Every augmented version of a test input gets a prediction. Each prediction is decoded to a grid
and mapped back through its version's inverse transform; identical grids pool their votes. The
candidates of a test pair are ranked by votes, ties broken by the mean halting logit, and the
pair counts as solved at k if the true output is among the top k. A task scores the fraction of
its test pairs solved; pass@k is the mean over tasks.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from trm_edge.tasks.arc import ArcCodec
from trm_edge.train.augment import dihedral_inverse, unpermute_colours
from trm_edge.train.dataset import Split


def _key(grid: np.ndarray) -> bytes:
    return np.array(grid.shape, np.int64).tobytes() + grid.astype(np.int8).tobytes()


def original_grid(tokens: np.ndarray, k: int, colours: np.ndarray, codec: ArcCodec) -> np.ndarray:
    """A predicted canvas decoded and mapped back to the task's own orientation and colours."""
    grid = np.array(codec.decode_grid(tokens), dtype=np.int64)
    if grid.size == 0:
        return grid
    return unpermute_colours(dihedral_inverse(grid, k), colours)


def arc_pass_at_k(
    split: Split, answers: np.ndarray, q_halt: np.ndarray, ks: tuple[int, ...] = (1, 2)
) -> dict[str, float]:
    """{'pass@1': ..., 'pass@2': ..., 'tasks': n} from the test split built by build_arc."""
    codec = ArcCodec(30)
    a = split.arrays
    votes: dict[tuple[int, int], dict[bytes, list[float]]] = defaultdict(dict)
    truth: dict[tuple[int, int], bytes] = {}
    for i in range(len(split)):
        pair = (int(a["task_index"][i]), int(a["pair_index"][i]))
        k, colours = int(a["dihedral"][i]), a["colours"][i].astype(np.int64)
        predicted = _key(original_grid(answers[i], k, colours, codec))
        entry = votes[pair].setdefault(predicted, [0.0, 0.0])
        entry[0] += 1
        entry[1] += float(q_halt[i])
        if k == 0 and (colours == np.arange(10)).all():
            truth[pair] = _key(original_grid(split.labels[i], 0, colours, codec))
    per_task: dict[int, dict[int, list[bool]]] = defaultdict(lambda: defaultdict(list))
    for pair, candidates in votes.items():
        ranked = sorted(candidates.items(), key=lambda kv: (kv[1][0], kv[1][1] / kv[1][0]), reverse=True)
        keys = [key for key, _ in ranked]
        for k in ks:
            per_task[pair[0]][k].append(truth.get(pair) in keys[:k])
    result = {f"pass@{k}": float(np.mean([np.mean(t[k]) for t in per_task.values()])) for k in ks}
    result["tasks"] = float(len(per_task))
    return result
