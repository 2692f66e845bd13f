"""ARC datasets in the official layout: every augmented version of a task is its own puzzle.

For each task of the chosen subsets, the identity and up to `augment` random (symmetry, colour
permutation) versions are made, duplicates dropped. Each version gets its own puzzle identifier
(0 is reserved), shared by its demonstration pairs and its test pairs, so the puzzle embedding
learnt from the demonstrations is there when the test input is asked. Tasks of the test subset
put their demonstration pairs in the train split and their test pairs in the test split; every
other task puts all its pairs in the train split.

Versions are named as the official builder names them (`trm_edge.tasks.arc_versions`); the names,
index = puzzle identifier, go into the dataset info (`puzzle_names`) and from there into every
checkpoint trained on it, so the runtime can ask each version of a task and vote. The test split
also records, per example, its task, test pair and transform (see arc_eval).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from trm_edge.tasks.arc import ArcCodec
from trm_edge.tasks.arc_tasks import ArcTask, Grid
from trm_edge.tasks.arc_versions import BLANK, ArcVersion
from trm_edge.train.dataset import DatasetInfo, Split, save_dataset
from trm_edge.train.sources import read_arc_combined


def _encode(codec: ArcCodec, grid: Grid, version: ArcVersion) -> np.ndarray:
    # uint8 right away: a full build holds millions of 900-token canvases.
    return codec.encode_grid(version.forward(grid).tolist()).astype(np.uint8)


def _versions(task: ArcTask, augment: int, rng: np.random.Generator) -> list[ArcVersion]:
    """The identity first, then distinct random (symmetry, colour permutation) versions."""
    versions = [ArcVersion(task.name)]
    seen = {_fingerprint(task, versions[0])}
    for _ in range(augment * 5):  # a few tries per wanted version: small tasks have few distinct ones
        if len(versions) > augment:
            break
        colours = (0, *(int(c) for c in rng.permutation(9) + 1))
        version = ArcVersion(task.name, int(rng.integers(8)), colours)
        key = _fingerprint(task, version)
        if key not in seen:
            seen.add(key)
            versions.append(version)
    return versions


def _fingerprint(task: ArcTask, version: ArcVersion) -> bytes:
    parts = []
    for pair in task.train + [(i, o) for i, o in task.test if o is not None]:
        for grid in pair:
            g = version.forward(grid)
            parts.append(np.array(g.shape, np.int64).tobytes() + g.astype(np.int8).tobytes())
    return b"|".join(parts)


def build_arc(
    out: str | Path,
    source: str | Path,
    subsets: list[str],
    test_set: str,
    augment: int = 1000,
    seed: int = 0,
    max_tasks: int = 0,
    progress: Callable[[int], None] | None = None,
) -> Path:
    codec = ArcCodec(30)
    rng = np.random.default_rng(seed)
    if test_set not in subsets:
        subsets = [*subsets, test_set]
    train = {"inputs": [], "labels": [], "ids": []}  # type: ignore[var-annotated]
    test = {"inputs": [], "labels": [], "ids": [], "task": [], "pair": [], "dihedral": [], "colours": []}  # type: ignore[var-annotated]
    task_names: list[str] = []
    puzzle_names = [BLANK]  # index = puzzle identifier, official names
    for subset in subsets:
        tasks = read_arc_combined(source, subset)
        if max_tasks:
            tasks = tasks[:max_tasks]
        is_test = subset == test_set
        for task in tasks:
            task_index = len(task_names)
            task_names.append(f"{subset}/{task.name}")
            for version in _versions(task, augment, rng):
                pid = len(puzzle_names)
                puzzle_names.append(version.name)
                pairs_to_train = task.train if is_test else task.train + [p for p in task.test if p[1] is not None]
                for grid_in, grid_out in pairs_to_train:
                    train["inputs"].append(_encode(codec, grid_in, version))
                    train["labels"].append(_encode(codec, grid_out, version))
                    train["ids"].append(pid)
                if not is_test:
                    continue
                for pair_index, (grid_in, grid_out) in enumerate(task.test):
                    if grid_out is None:
                        continue
                    test["inputs"].append(_encode(codec, grid_in, version))
                    test["labels"].append(_encode(codec, grid_out, version))
                    test["ids"].append(pid)
                    test["task"].append(task_index)
                    test["pair"].append(pair_index)
                    test["dihedral"].append(version.symmetry)
                    test["colours"].append(version.colours)
            if progress is not None:
                progress(1)
    splits = {
        "train": Split(
            np.array(train["inputs"], np.uint8), np.array(train["labels"], np.uint8), np.array(train["ids"], np.int32)
        )
    }
    if test["inputs"]:
        splits["test"] = Split(
            np.array(test["inputs"], np.uint8),
            np.array(test["labels"], np.uint8),
            np.array(test["ids"], np.int32),
            {
                "task_index": np.array(test["task"], np.int32),
                "pair_index": np.array(test["pair"], np.int32),
                "dihedral": np.array(test["dihedral"], np.int8),
                "colours": np.array(test["colours"], np.int8),
            },
        )
    info = DatasetInfo(
        task="arc",
        seq_len=900,
        vocab_size=12,
        num_puzzle_identifiers=len(puzzle_names),
        task_options={"size": 30},
        built_with={
            "builder": "arc",
            "source": str(source),
            "subsets": subsets,
            "test_set": test_set,
            "augment": augment,
            "seed": seed,
            "max_tasks": max_tasks,
        },
        extra={"tasks": task_names, "puzzle_names": puzzle_names},
    )
    return save_dataset(out, info, splits)
