"""validation.npz: the puzzles an export validated on, kept for the runtime's precision check.

Written by the export stage (real puzzles whenever it had them, `real` says which), read by the
runtime before it trusts a lower inference precision (runtime/backends/precision_check.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from trm_edge.contract.metadata import ExportMetadata
from trm_edge.errors import TrmEdgeError

VALIDATION_FILE = "validation.npz"
MAX_ROWS = 64  # validation puzzles kept in an export (and run by the check)


def write_validation_puzzles(export_dir: Path, tokens: Any, puzzle_identifiers: Any, real: bool) -> Path:
    path = Path(export_dir) / VALIDATION_FILE
    np.savez(path, tokens=np.asarray(tokens, np.int32)[:MAX_ROWS],
             puzzle_identifiers=np.asarray(puzzle_identifiers, np.int32)[:MAX_ROWS], real=np.array(bool(real)))
    return path


def read_validation_puzzles(export_dir: Path, meta: ExportMetadata) -> tuple[np.ndarray, np.ndarray, bool] | None:
    """(tokens, puzzle ids, real) from the export, None when it has none (exported before they
    were kept); a damaged file is a clear error."""
    path = Path(export_dir) / VALIDATION_FILE
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            tokens, ids, real = data["tokens"], data["puzzle_identifiers"], bool(data["real"])
    except (OSError, ValueError, KeyError, EOFError) as exc:
        raise TrmEdgeError(f"{path} is damaged ({str(exc)[:120]}): export again") from None
    model = meta.model
    if (tokens.ndim != 2 or tokens.shape[1] != model.seq_len or not 0 < len(tokens) <= MAX_ROWS
            or ids.shape != (len(tokens),) or tokens.dtype.kind not in "iu" or ids.dtype.kind not in "iu"
            or tokens.min() < 0 or tokens.max() >= model.vocab_size
            or ids.min() < 0 or ids.max() >= model.num_puzzle_identifiers):
        raise TrmEdgeError(f"{path} does not fit this export's model: export again")
    return tokens.astype(np.int32), ids.astype(np.int32), real


def random_puzzles(meta: ExportMetadata, rows: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray, bool]:
    """Tokens as export validation draws them, for exports without validation.npz."""
    rng = np.random.default_rng(seed)
    low = 1 if meta.model.vocab_size > 1 else 0
    tokens = rng.integers(low, meta.model.vocab_size, size=(rows, meta.model.seq_len), dtype=np.int32)
    ids = rng.integers(0, meta.model.num_puzzle_identifiers, size=(rows,), dtype=np.int32)
    return tokens, ids, False
