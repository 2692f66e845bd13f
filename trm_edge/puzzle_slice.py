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

from trm_edge.checkpoint import load_checkpoint, save_checkpoint
from trm_edge.errors import CheckpointError, TrmEdgeError
from trm_edge.model import RecursiveReasoningModel


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


def ids_matching(identifiers_json: Path, pattern: str) -> list[int]:
    """Identifiers whose names (the official `identifiers.json`: a list, index = id) match `pattern`;
    id 0, the blank identifier, always comes first."""
    names = json.loads(Path(identifiers_json).read_text())
    if not isinstance(names, list):
        raise TrmEdgeError(f"{identifiers_json} should be a JSON list of puzzle names (index = identifier)")
    regex = re.compile(pattern)
    chosen = [i for i, name in enumerate(names) if i > 0 and regex.search(str(name))]
    if not chosen:
        raise TrmEdgeError(f"no puzzle name in {identifiers_json} matches {pattern!r}")
    return [0, *chosen]


def slice_puzzle_embeddings(checkpoint: str | Path, keep: list[int], output: str | Path) -> Path:
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
    info = dict(model.info)  # type: ignore[attr-defined]
    old_map = info.get("puzzle_id_map")
    info["puzzle_id_map"] = [old_map[i] for i in keep] if old_map else list(keep)
    info["sliced_from"] = Path(checkpoint).name
    return save_checkpoint(sliced, output, info)
