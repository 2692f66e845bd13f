"""The executorch and litert backends: the export's programs for a phone runtime (trm_edge/programs.py),
run here by that runtime's own Python package, so an app's loop can be checked on a desktop first.

The state lives in host arrays (as on ort-cpu): each step passes the slots' x_emb, z_H and z_L in
and takes the next state back, so the width follows the work (`can_reslot`).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from trm_edge.contract.metadata import ExportMetadata
from trm_edge.errors import TrmEdgeError
from trm_edge.programs import RUNTIME_PACKAGES, missing_program, open_runner


class ProgramBackend:
    can_reslot = True

    def __init__(self, name: str, export_dir: Path, meta: ExportMetadata, width: int, threads: int | None) -> None:
        why = missing_program(export_dir, meta.programs, name)
        if why is not None:
            raise TrmEdgeError(why)
        self.name = name
        self.meta = meta
        self.precision = "fp32"
        self.record = meta.programs[name]
        self.runner = open_runner(name, export_dir, self.record, meta.model.uses_puzzle_identifiers, threads)
        self.notes = self.runner.notes  # a runtime other than the one the programs were validated with
        self.resize(width)

    def resize(self, width: int) -> None:
        model = self.meta.model
        self.width = width
        shape = (width, model.state_len, model.hidden_size)
        self.x_emb = np.zeros(shape, np.float32)
        self.z_H = np.zeros(shape, np.float32)
        self.z_L = np.zeros(shape, np.float32)

    def reslot(self, keep: np.ndarray, width: int) -> None:
        kept = self.z_H[keep], self.z_L[keep]
        self.resize(width)
        self.z_H[: len(keep)], self.z_L[: len(keep)] = kept

    def set_inputs(self, tokens: np.ndarray, puzzle_identifiers: np.ndarray) -> None:
        feeds = {"tokens": np.ascontiguousarray(tokens, np.int32),
                 "puzzle_identifiers": np.ascontiguousarray(puzzle_identifiers, np.int32)}
        self.x_emb = self.runner.init(feeds)

    def step(self, reset: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        z_H, z_L, _, answer, q_halt, q_continue = self.runner.step(
            {"x_emb": self.x_emb, "z_H": self.z_H, "z_L": self.z_L, "reset": np.ascontiguousarray(reset, bool)})
        self.z_H, self.z_L = z_H, z_L
        return answer.astype(np.int32, copy=False), q_halt, q_continue

    def read_state(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.z_H[rows].astype(np.float32), self.z_L[rows].astype(np.float32)

    def write_state(self, rows: np.ndarray, z_H: np.ndarray, z_L: np.ndarray) -> None:
        # A runtime may hand back read-only arrays: the next step reads fresh copies.
        self.z_H, self.z_L = np.array(self.z_H, np.float32), np.array(self.z_L, np.float32)
        self.z_H[rows], self.z_L[rows] = z_H, z_L

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "engine": self.runner.engine, "programs": [self.record["init"],
                self.record["step"]], "width": self.runner.width, **(self.record.get("software") or {})}


def create(name: str, export_dir: Path, meta: ExportMetadata, width: int, threads: int | None,
           precision: str) -> ProgramBackend:
    if precision not in ("fp32", meta.precision):
        raise TrmEdgeError(f"{name} runs the export's float32 programs, not {precision}: ask fp32 "
                           f"(--backend {name}:fp32)")
    return ProgramBackend(name, export_dir, meta, width, threads)


def unusable(name: str, export_dir: Path | None = None, meta: ExportMetadata | None = None) -> str | None:
    """Why `name` cannot run here (its package missing), or this export (no such programs in it)."""
    # Looked up, not imported: ExecuTorch's runtime brings torch, seconds that doctor and auto need not spend.
    if importlib.util.find_spec("executorch" if name == "executorch" else "ai_edge_litert") is None:
        return f"{RUNTIME_PACKAGES[name]} is not installed"
    if export_dir is not None and meta is not None:
        return missing_program(export_dir, meta.programs, name)
    return None
