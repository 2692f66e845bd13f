"""The interface every backend implements (registry.py lists them; choice.py says which `auto` runs).

A backend owns the device state of a fixed batch of slots and does three things: load (in its
constructor), take the puzzles now in the slots (`set_inputs`), and run one step (`step`). The
halting and continuous batching above it (solver.py) are written once for all of them. A backend
whose batch width can change (`can_reslot`) also resizes and moves slots (`resize`, `reslot`).
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np


class Backend(Protocol):
    name: str
    width: int  # the rows the step runs now (at most the solver's slots)
    precision: str  # what the steps run in: the export's, or lower where the backend lowers it
    # Whether the batch width can change between steps (`resize`, `reslot`); when it can, the loop
    # runs only as many slots as it has puzzles for.
    can_reslot: bool

    def resize(self, width: int) -> None:
        """Empty slots at a new width (state discarded). Only when `can_reslot`."""
        ...

    def reslot(self, keep: np.ndarray, width: int) -> None:
        """A new width whose first len(keep) slots carry the state of slots `keep`. Only when `can_reslot`."""
        ...

    def set_inputs(self, tokens: np.ndarray, puzzle_identifiers: np.ndarray) -> None:
        """The puzzles in every slot, (batch, seq_len) int32 and (batch,) int32: recomputes the input
        embedding on the device (called only when some slot received a new puzzle)."""
        ...

    def step(self, reset: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One supervision step for all slots; slots with reset[i] start from the initial state.
        Returns host copies of (answer (batch, seq_len) int32, q_halt (batch,), q_continue (batch,))."""
        ...

    def read_state(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Host float32 copies of the latent state (z_H, z_L) of slots `rows`, as the last step left
        it: (len(rows), state_len, hidden_size) each. Trajectories (runtime/trajectories.py) nudge it."""
        ...

    def write_state(self, rows: np.ndarray, z_H: np.ndarray, z_L: np.ndarray) -> None:
        """Replace the state of slots `rows` (the next step reads it), in the backend's own dtype."""
        ...

    def describe(self) -> dict[str, Any]:
        """Backend name, library versions and device, for benchmark reports."""
        ...


NO_INT8_STEP = ("this export has no int8 step: export it again with --precision int8 (a checkpoint fine-tuned with "
                "train.quantize: int8 keeps its accuracy there; see docs/int8.md)")


def int8_step_file(meta: Any) -> str:
    """The export's int8 step (step_int8.onnx), or a clear error where it has none."""
    if meta.int8_step is None:
        from trm_edge.errors import TrmEdgeError

        raise TrmEdgeError(NO_INT8_STEP)
    return str(meta.int8_step)
