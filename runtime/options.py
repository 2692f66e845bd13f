"""How a solver opens an export: one object holding every setting, built once by the CLI for every
runtime command and taken by `Solver.load` (the shape of ONNX Runtime's SessionOptions).

    options = SolverOptions(backend="openvino", precision="bf16", slots=16)
    solver = Solver.load("sudoku_export", options)
    solver = Solver.load("sudoku_export", slots=16)   # the same fields as keywords

docs/architecture.md's glossary says what each name means everywhere it appears.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from typing import Any

from trm_edge.errors import TrmEdgeError
from trm_edge.precisions import RUNTIME_PRECISIONS

MAX_SLOTS = 1 << 20  # slots at most, whatever is asked (allocated only as puzzles need them)
DEFAULT_SLOTS = 64  # slots when none are asked (a fixed-batch export: its batch)


@dataclass(frozen=True)
class SolverOptions:
    """backend: auto | ort-cpu | ort-cuda | ort-trt | tensorrt | openvino[:DEVICE] | executorch | litert.
    precision: auto | fp32 | bf16 | fp16 | int8.
    halt: auto | verified | calibrated | model | fixed:N | threshold:P | stable:K | combinations
    (docs/halting.md).
    max_steps: the most steps any puzzle runs (None: the model's halt_max_steps; checked at load).
    threads: CPU threads for the backend (None: every usable core).
    slots: puzzles in flight at once, the solver's width (None: 64; a fixed-batch export: its batch).
    measure: choose the backend again by measurement, whatever the export remembers."""

    backend: str = "auto"
    precision: str = "auto"
    halt: str = "auto"
    max_steps: int | None = None
    threads: int | None = None
    slots: int | None = None
    measure: bool = False

    def __post_init__(self) -> None:
        head, _, tail = self.backend.rpartition(":")
        if head and tail in RUNTIME_PRECISIONS:  # the command line's BACKEND:PRECISION, given to the API
            raise TrmEdgeError(f"backend {self.backend!r} names a precision: give backend={head!r}, "
                               f"precision={tail!r} (the command line's --backend {self.backend} says both)")
        if self.slots is not None and not 1 <= self.slots <= MAX_SLOTS:
            raise TrmEdgeError(f"slots must lie in [1, {MAX_SLOTS}], got {self.slots}")
        if self.threads is not None and self.threads < 1:
            raise TrmEdgeError(f"threads must be at least 1, got {self.threads}")

    def with_settings(self, **settings: Any) -> SolverOptions:
        """These options with some fields changed; an unknown name is one line listing the known ones."""
        if "max_batch" in settings:  # the name before slots (one name per idea)
            warnings.warn("max_batch is now called slots", DeprecationWarning, stacklevel=3)
            settings["slots"] = settings.pop("max_batch")
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(settings) - known)
        if unknown:
            names = ", ".join(sorted(known))
            raise TrmEdgeError(f"unknown solver option {', '.join(unknown)}: the options are {names}")
        return dataclasses.replace(self, **settings) if settings else self


def split_backend(spec: str) -> tuple[str, str]:
    """(backend, precision) from the command line's one `--backend` value, BACKEND[:DEVICE][:PRECISION]:
    'openvino:bf16', 'openvino:GPU:fp16', 'ort-cpu', or a precision alone ('int8': auto's choice of
    backend at that precision). The API keeps the two as SolverOptions' own fields."""
    head, _, tail = spec.rpartition(":")
    if tail in RUNTIME_PRECISIONS and tail != "auto":
        return (head or "auto"), tail
    if spec in RUNTIME_PRECISIONS:
        return "auto", spec
    return spec, "auto"
