"""One Triton request's tensors -> checked puzzles, and results -> its output tensors (numpy only).

A malformed request raises PuzzleError with a message for the client; the caller turns it into
that request's Triton error, so it never touches the other requests of the batch.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from trm_edge.contract.triton import (
    ANSWER,
    ANSWER_TEXT,
    HALT_CONFIDENCE,
    PUZZLE_IDS,
    PUZZLE_TEXT,
    STEPS,
    TOKENS,
    VERIFIED,
)
from trm_edge.runtime.solver import Result, Solver
from trm_edge.tasks import PuzzleError

Encoded = tuple[np.ndarray, int]


def read_request(solver: Solver, tensors: Mapping[str, np.ndarray | None]) -> list[Encoded]:
    """The request's puzzles (one per row), each checked by the solver's encoder."""
    tokens, ids, text = tensors.get(TOKENS), tensors.get(PUZZLE_IDS), tensors.get(PUZZLE_TEXT)
    if (tokens is None) == (text is None):
        raise PuzzleError(f"send exactly one of '{TOKENS}' (INT32 [n, seq_len]) or '{PUZZLE_TEXT}' (BYTES [n, 1])")
    for name, array, kinds in ((TOKENS, tokens, "iu"), (PUZZLE_IDS, ids, "iu"), (PUZZLE_TEXT, text, "OSU")):
        if array is None:
            continue
        if not isinstance(array, np.ndarray) or array.ndim == 0 or array.dtype.kind not in kinds:
            what = "integers" if kinds == "iu" else "bytes"
            raise PuzzleError(f"'{name}' must be an array of {what} with a batch dimension")
    if tokens is not None and tokens.ndim != 2:
        raise PuzzleError(f"'{TOKENS}' must be [n, seq_len], got shape {list(tokens.shape)}")
    rows = len(tokens) if tokens is not None else len(text) if text is not None else 0
    if rows == 0:
        raise PuzzleError("the request holds no puzzles (its batch dimension is 0)")
    if ids is not None:
        if len(ids) != rows:
            raise PuzzleError(f"'{PUZZLE_IDS}' has {len(ids)} rows but the puzzles have {rows}")
        row_ids = [int(i) for i in ids.reshape(rows, -1)[:, 0]]
    else:
        row_ids = [0] * rows
    if tokens is not None:
        return [solver.encode((tokens[r], row_ids[r]), r) for r in range(rows)]
    puzzles = []
    for r, value in enumerate(np.asarray(text).reshape(rows, -1)[:, 0]):
        try:
            puzzle = value.decode("utf-8") if isinstance(value, bytes) else str(value)
        except UnicodeDecodeError:
            raise PuzzleError(f"puzzle {r}: '{PUZZLE_TEXT}' is not UTF-8 text") from None
        puzzles.append(solver.encode((puzzle, row_ids[r]), r))
    return puzzles


def response_tensors(results: list[Result]) -> dict[str, np.ndarray]:
    """Output tensors for one request's results (in its row order)."""
    return {
        ANSWER: np.stack([r.answer for r in results]).astype(np.int32),
        ANSWER_TEXT: np.array([[(r.text or "").encode()] for r in results], dtype=np.object_),
        STEPS: np.array([[r.steps] for r in results], dtype=np.int32),
        HALT_CONFIDENCE: np.array([[r.halt_confidence] for r in results], dtype=np.float32),
        VERIFIED: np.array([[r.verified_code] for r in results], dtype=np.int8),
    }
