"""Built datasets on disk: a folder of NumPy arrays per split plus one `dataset.json`.

    DATA/dataset.json          task, sizes, how it was built (see DatasetInfo)
    DATA/train/inputs.npy      (N, seq_len) uint8 token ids (0 = padding)
    DATA/train/labels.npy      (N, seq_len) uint8 token ids (0 = no label, carries no loss)
    DATA/train/puzzle_identifiers.npy  (N,) int32
    DATA/test/...              the same, plus any per-example arrays a task needs (ARC: which
                               task, test pair and transform each augmented example came from)

Token ids are the ones the task codecs in `trm_edge.tasks` use, so a built dataset, a checkpoint
and the runtime agree on them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trm_edge.atomic import atomic_folder
from trm_edge.errors import TrmEdgeError
from trm_edge.fault_points import fault_point

DATASET_FORMAT = "trm-edge-dataset"
DATASET_FILE = "dataset.json"
DATASET_VERSION = 1
CORE_ARRAYS = ("inputs", "labels", "puzzle_identifiers")
# Generators make test puzzles from indices far past any training count, so generated splits never
# share a puzzle index (and unseen_rows removes any duplicate all the same).
TEST_INDEX_OFFSET = 1 << 30


@dataclass
class DatasetInfo:
    task: str
    seq_len: int
    vocab_size: int
    num_puzzle_identifiers: int
    splits: dict[str, int] = field(default_factory=dict)
    task_options: dict[str, Any] = field(default_factory=dict)
    built_with: dict[str, Any] = field(default_factory=dict)  # builder name and its arguments
    extra: dict[str, Any] = field(default_factory=dict)  # task-specific (ARC: task names)


@dataclass
class Split:
    inputs: np.ndarray
    labels: np.ndarray
    puzzle_identifiers: np.ndarray
    arrays: dict[str, np.ndarray] = field(default_factory=dict)  # per-example extras

    def __len__(self) -> int:
        return len(self.inputs)

    def subset(self, index: np.ndarray | slice) -> Split:
        return Split(
            self.inputs[index], self.labels[index], self.puzzle_identifiers[index],
            {k: v[index] for k, v in self.arrays.items()},
        )


def save_dataset(path: str | Path, info: DatasetInfo, splits: dict[str, Split]) -> Path:
    """Write the dataset folder whole or not at all: built aside, swapped in (replacing an older dataset)."""
    root = Path(path)
    for name, split in splits.items():
        if split.inputs.shape != split.labels.shape or split.inputs.shape[1:] != (info.seq_len,):
            raise TrmEdgeError(f"split {name}: inputs {split.inputs.shape} and labels {split.labels.shape} "
                               f"must both be (N, {info.seq_len})")
    with atomic_folder(root, marker=DATASET_FILE) as staging:
        for name, split in splits.items():
            folder = staging / name
            folder.mkdir()
            np.save(folder / "inputs.npy", split.inputs.astype(np.uint8))
            np.save(folder / "labels.npy", split.labels.astype(np.uint8))
            np.save(folder / "puzzle_identifiers.npy", split.puzzle_identifiers.astype(np.int32))
            for key, arr in split.arrays.items():
                np.save(folder / f"{key}.npy", arr)
            info.splits[name] = len(split)
            fault_point(f"dataset: split {name} written")
        meta = {"format": DATASET_FORMAT, "format_version": DATASET_VERSION, **asdict(info)}
        (staging / DATASET_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    return root


def load_info(path: str | Path) -> DatasetInfo:
    root = Path(path)
    meta_file = root / DATASET_FILE
    if not meta_file.is_file():
        raise TrmEdgeError(
            f"{root} is not a trm-edge dataset (no dataset.json): build one with `trm-edge data ...`"
        )
    meta = json.loads(meta_file.read_text())
    if meta.pop("format", None) != DATASET_FORMAT:
        raise TrmEdgeError(f"{meta_file} is not a trm-edge dataset description")
    version = meta.pop("format_version", None)
    if version != DATASET_VERSION:
        raise TrmEdgeError(f"{meta_file} has format version {version}; this trm-edge reads {DATASET_VERSION}")
    return DatasetInfo(**meta)


def load_split(path: str | Path, name: str) -> Split:
    folder = Path(path) / name
    if not folder.is_dir():
        available = ", ".join(sorted(load_info(path).splits)) or "none"
        raise TrmEdgeError(f"dataset {path} has no split {name!r} (it has: {available})")
    core = {k: np.load(folder / f"{k}.npy") for k in CORE_ARRAYS}
    extras = {f.stem: np.load(f) for f in sorted(folder.glob("*.npy")) if f.stem not in CORE_ARRAYS}
    return Split(core["inputs"], core["labels"], core["puzzle_identifiers"], extras)


def unseen_rows(train: np.ndarray, test: np.ndarray) -> np.ndarray:
    """Indices of the test rows that do not occur, token for token, among the training rows
    (generated splits are drawn from disjoint index ranges, and checked here as well)."""
    seen = {row.tobytes() for row in train}
    return np.array([i for i, row in enumerate(test) if row.tobytes() not in seen], dtype=np.int64)


class BatchOrder:
    """Which examples each global batch holds: a fresh permutation per epoch, drawn from
    (seed, epoch), so the position (epoch, offset) is all a resumed run needs."""

    def __init__(self, size: int, global_batch: int, seed: int, epoch: int = 0, offset: int = 0) -> None:
        if size < global_batch:
            raise TrmEdgeError(
                f"the training split has {size} examples, fewer than one global batch ({global_batch}): "
                "build more data or lower train.global_batch_size"
            )
        self.size, self.global_batch, self.seed = size, global_batch, seed
        self.epoch, self.offset = epoch, offset
        self._perm = self._permutation(epoch)

    def _permutation(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(self.size)

    def next(self) -> np.ndarray:
        if self.offset + self.global_batch > self.size:
            self.epoch, self.offset = self.epoch + 1, 0
            self._perm = self._permutation(self.epoch)
        batch = self._perm[self.offset : self.offset + self.global_batch]
        self.offset += self.global_batch
        return batch
