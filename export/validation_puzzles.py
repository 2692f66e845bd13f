"""What an export validates on: real puzzles whenever they can be had, random tokens only when not.

The same puzzles go into the export (validation.npz), where the runtime checks a lower inference
precision on them before trusting it (runtime/backends/precision_check.py). Random tokens are no test of
that: a trained model's answers to them are chaotic in any precision, so the runtime runs an
export validated only on random tokens at its own precision. In order:

1. the puzzles the user gave (`--data`);
2. for a task with rules (Sudoku, maze): puzzles its codec makes at the checkpoint's sizes;
3. for ARC: the test inputs of the data set the checkpoint was trained on, when the checkpoint
   names one (`info.dataset`, written by `trm-edge train`) and it is on this machine;
4. random tokens, said in one line with the way out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trm_edge.config import ModelConfig
from trm_edge.errors import TrmEdgeError
from trm_edge.tasks import get_codec

GENERATED = 32  # puzzles a codec makes for validation (64 at most are kept: precision_check.MAX_ROWS)
FROM_DATASET = 32  # test inputs taken from the checkpoint's own data set


@dataclass
class ValidationPuzzles:
    tokens: np.ndarray  # (N, seq_len) int32
    puzzle_identifiers: np.ndarray  # (N,) int32
    origin: str  # "given" | "generated" | "dataset" | "random"
    description: str  # for the export's output and trm_edge.json

    @property
    def real(self) -> bool:
        return self.origin != "random"


def choose_validation_puzzles(
    config: ModelConfig, info: dict[str, Any], tokens: Any = None, puzzle_identifiers: Any = None,
    batch: int = 4, seed: int = 0, given_name: str = "the given puzzles",
) -> ValidationPuzzles:
    """The puzzles an export of a model with `config` (and checkpoint `info`) validates on."""
    if tokens is not None:
        tokens = np.asarray(tokens, dtype=np.int32)
        ids = np.zeros(len(tokens), np.int32) if puzzle_identifiers is None else puzzle_identifiers
        return ValidationPuzzles(tokens, np.asarray(ids, np.int32), "given", f"{len(tokens)} puzzles of {given_name}")
    codec = _codec(config)
    made = codec.sample_puzzles(GENERATED, seed) if codec is not None else None
    if made is not None and made.shape == (GENERATED, config.seq_len):
        return ValidationPuzzles(made.astype(np.int32), np.zeros(GENERATED, np.int32), "generated",
                                 f"{GENERATED} {codec.name} puzzles the task's codec made (seed {seed})")
    from_dataset = _dataset_test_inputs(config, info)
    if from_dataset is not None:
        return from_dataset
    rng = np.random.default_rng(seed)
    low = 1 if config.vocab_size > 1 else 0
    random_tokens = rng.integers(low, config.vocab_size, size=(batch, config.seq_len), dtype=np.int32)
    ids = rng.integers(0, config.num_puzzle_identifiers, size=(batch,), dtype=np.int32)
    return ValidationPuzzles(random_tokens, ids, "random", f"{batch} random token sequences")


def random_validation_notice(config: ModelConfig) -> str:
    """The one line an export validated on random tokens prints."""
    if config.task == "arc":
        why = "no ARC task files were at hand"
        how = "--data TASKS.json (tasks this checkpoint knows) or --data HELD_OUT.npz"
    else:
        why, how = f"task {config.task!r} makes no puzzles of its own", "--data HELD_OUT.npz"
    return (f"validated on random tokens ({why}), so auto will run this export at its own precision, "
            f"never lower: give real puzzles with {how}")


def _codec(config: ModelConfig) -> Any:
    try:
        return get_codec(config.task, config.task_options)
    except TrmEdgeError:  # a task without a codec: nothing to make puzzles with
        return None


def _dataset_test_inputs(config: ModelConfig, info: dict[str, Any]) -> ValidationPuzzles | None:
    """The first test inputs (and their puzzle identifiers) of the data set the checkpoint names,
    when it is here and fits the model; None otherwise."""
    named = info.get("dataset") if isinstance(info, dict) else None
    if not isinstance(named, str):
        return None
    folder = Path(named) / "test"
    try:
        inputs = np.load(folder / "inputs.npy", allow_pickle=False)[:FROM_DATASET]
        ids = np.load(folder / "puzzle_identifiers.npy", allow_pickle=False)[:FROM_DATASET]
    except (OSError, ValueError):
        return None
    fits = (inputs.ndim == 2 and inputs.shape[1] == config.seq_len and len(inputs) > 0 and ids.shape == (len(inputs),)
            and inputs.dtype.kind in "iu" and ids.dtype.kind in "iu" and int(inputs.max()) < config.vocab_size
            and int(ids.min()) >= 0 and int(ids.max()) < config.num_puzzle_identifiers)
    if not fits:
        return None
    return ValidationPuzzles(inputs.astype(np.int32), ids.astype(np.int32), "dataset",
                             f"{len(inputs)} test inputs of the checkpoint's data set {named}")


def arc_test_inputs(path: Path, config: ModelConfig, puzzle_names: list[str] | None,
                    limit: int = GENERATED) -> tuple[np.ndarray, np.ndarray]:
    """(tokens, puzzle identifiers) of the test inputs of the ARC tasks in `path` (Kaggle
    challenges JSON, one task JSON or a folder of them) that the checkpoint knows, each asked in
    the first version of its task the checkpoint names (the identity where it has it)."""
    from trm_edge.tasks.arc import ArcCodec
    from trm_edge.tasks.arc_tasks import read_arc_tasks
    from trm_edge.tasks.arc_versions import versions_by_task

    if not puzzle_names:
        raise TrmEdgeError("this checkpoint names no ARC task versions (no puzzle_names in its info), so its "
                           "puzzle identifiers cannot be matched to task files: give --data as an .npz with "
                           "'inputs' and 'puzzle_identifiers'")
    known = versions_by_task(puzzle_names)
    codec = ArcCodec(**config.task_options)
    tokens, ids = [], []
    for task in read_arc_tasks(path):
        if task.name not in known:
            continue
        version = known[task.name][0]
        for grid, _ in task.test:
            tokens.append(codec.encode_grid(version.version.forward(grid).tolist()))
            ids.append(version.identifier)
    if not tokens:
        raise TrmEdgeError(f"none of the ARC tasks in {path} is one this checkpoint knows ({len(known)} tasks, e.g. "
                           f"{next(iter(known), '-')}): give the task files it was trained on")
    return np.stack(tokens)[:limit].astype(np.int32), np.array(ids[:limit], np.int32)
