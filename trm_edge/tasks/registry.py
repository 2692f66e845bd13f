"""Every task by name: one line each. A task outside trm-edge registers its codec with `register`.

`get_codec(name, options)` is how a checkpoint's `task` and `task_options` become the codec that
reads, verifies and versions its puzzles; `task_for_shape` is how `convert` names the task of an
official checkpoint from its (seq_len, vocab).
"""

from __future__ import annotations

from typing import Any, cast

from trm_edge.errors import TrmEdgeError
from trm_edge.tasks.arc import ArcCodec
from trm_edge.tasks.base import BaseCodec, Codec
from trm_edge.tasks.maze import MazeCodec
from trm_edge.tasks.sudoku import SudokuCodec

TASKS: dict[str, type[BaseCodec]] = {}


def register(codec: type[BaseCodec]) -> type[BaseCodec]:
    """Add a codec class (its `name` is the task's name); returns it, so it works as a decorator."""
    TASKS[codec.name] = codec
    return codec


register(SudokuCodec)
register(MazeCodec)
register(ArcCodec)


def get_codec(name: str, options: dict[str, Any] | None = None) -> Codec:
    """The codec a model's config names (`task`, `task_options`)."""
    codec = TASKS.get(name)
    if codec is None:
        raise TrmEdgeError(f"task {name!r} has no puzzle codec (known: {', '.join(TASKS)}); give raw tokens instead "
                           "(an .npz of them)")
    try:
        return cast(Codec, codec(**(options or {})))  # a BaseCodec subclass implements the rest of Codec
    except TypeError:
        raise TrmEdgeError(f"task {name!r} does not take the options {options}") from None


def task_for_shape(seq_len: int, vocab_size: int) -> str:
    """The task whose official data sets have this (seq_len, vocab), else 'generic'."""
    return next((name for name, codec in TASKS.items() if getattr(codec, "official_shape", None) == (seq_len,
                                                                                                      vocab_size)),
                "generic")
