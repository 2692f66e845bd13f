"""Keep only the puzzle-embedding rows a deployment serves.

An official ARC checkpoint holds one 512-wide embedding per augmented training puzzle (close to a
million rows, most of the file); a service answering only the evaluation tasks needs a few
thousand. Slicing writes a checkpoint whose table holds the chosen rows in the chosen order: new
identifier i is old identifier keep[i], and the map is stored in the checkpoint's info
(`puzzle_id_map`) so the old identifiers can always be translated.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

from trm_edge.checkpoint import load_checkpoint, read_header, save_checkpoint
from trm_edge.errors import CheckpointError, TrmEdgeError
from trm_edge.model import RecursiveReasoningModel
from trm_edge.tasks.arc_versions import versions_by_task


def parse_ids(text: str) -> list[int]:
    """'0,5,10-12' -> [0, 5, 10, 11, 12]."""
    ids: list[int] = []
    try:
        for part in filter(None, (p.strip() for p in text.split(","))):
            lo, sep, hi = part.partition("-")
            ids.extend(range(int(lo), int(hi) + 1) if sep else [int(lo)])
    except ValueError:
        raise TrmEdgeError(f"--ids takes integers and ranges like 0,5,10-12, got {text!r}") from None
    return ids


def read_names(identifiers_json: Path) -> list[str]:
    """The official `identifiers.json`: a list of puzzle names, index = identifier."""
    try:
        names = json.loads(Path(identifiers_json).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TrmEdgeError(f"cannot read puzzle names from {identifiers_json}: {str(exc)[:200]}") from None
    if not isinstance(names, list):
        raise TrmEdgeError(f"{identifiers_json} should be a JSON list of puzzle names (index = identifier)")
    return [str(n) for n in names]


def checkpoint_names(checkpoint: str | Path) -> list[str]:
    """The puzzle names a checkpoint carries (from convert --dataset or trm-edge train on ARC)."""
    names = read_header(checkpoint)[1].get("puzzle_names")
    if not names:
        raise TrmEdgeError(
            f"{checkpoint} carries no puzzle names: convert it with --dataset (the identifiers.json beside the "
            "dataset folder) or pass --identifiers identifiers.json"
        )
    return list(names)


def ids_matching(names: list[str], pattern: str) -> list[int]:
    """Identifiers whose names match `pattern`; id 0, the blank identifier, always comes first."""
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise TrmEdgeError(f"--match {pattern!r} is not a regular expression: {exc}") from None
    chosen = [i for i, name in enumerate(names) if i > 0 and regex.search(name)]
    if not chosen:
        raise TrmEdgeError(f"no puzzle name matches {pattern!r}")
    return [0, *chosen]


def ids_of_tasks(names: list[str], tasks: list[str]) -> list[int]:
    """Identifier 0 and every version of the given ARC tasks, in identifier order."""
    by_task = versions_by_task(names)
    missing = [t for t in tasks if t not in by_task]
    if missing:
        raise TrmEdgeError(
            f"{len(missing)} of the {len(tasks)} tasks have no version in this checkpoint "
            f"(first: {', '.join(missing[:5])}): was it trained on them?"
        )
    return [0, *sorted(v.identifier for t in tasks for v in by_task[t])]


def slice_puzzle_embeddings(
    checkpoint: str | Path, keep: list[int], output: str | Path, names: list[str] | None = None
) -> Path:
    """Write the checkpoint with only the rows of `keep`; `names` (index = old identifier) replace
    the names the checkpoint carries, if any."""
    model = load_checkpoint(checkpoint)
    c = model.config
    if c.puzzle_emb_ndim == 0:
        raise CheckpointError(f"{checkpoint} has no puzzle embedding to slice")
    if not keep:
        raise TrmEdgeError("keep at least one puzzle identifier")
    outside = [i for i in keep if not 0 <= i < c.num_puzzle_identifiers]
    if outside:
        raise TrmEdgeError(f"identifiers {outside[:5]} are outside this model's [0, {c.num_puzzle_identifiers})")
    if len(set(keep)) != len(keep):
        raise TrmEdgeError("each identifier may be kept once")
    sliced = RecursiveReasoningModel(dataclasses.replace(c, num_puzzle_identifiers=len(keep)))
    state = model.state_dict()
    state["puzzle_emb.weight"] = state["puzzle_emb.weight"][keep].clone()
    sliced.load_state_dict(state)
    info = dict(model.info)
    if names is not None:
        if len(names) != c.num_puzzle_identifiers:
            raise TrmEdgeError(
                f"{len(names)} puzzle names for a model with {c.num_puzzle_identifiers} puzzle identifiers: "
                "give the identifiers.json of the dataset it was trained on"
            )
        info["puzzle_names"] = names
    old_map = info.get("puzzle_id_map")
    info["puzzle_id_map"] = [old_map[i] for i in keep] if old_map else list(keep)
    info["sliced_from"] = Path(checkpoint).name
    if info.get("puzzle_names"):  # the names follow their rows
        info["puzzle_names"] = [info["puzzle_names"][i] for i in keep]
    return save_checkpoint(sliced, output, info)
