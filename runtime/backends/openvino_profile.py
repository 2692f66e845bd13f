"""Where an OpenVINO step spends its time, and in which precision each product ran: OpenVINO's own
per-op counters (PERF_COUNT) for a step compiled exactly as the backend compiles it (its rewrites
included). Read by `benchmarks/step_profile.py` and by the test that holds every product to the
precision of the step (tests/test_step_precision.py)."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trm_edge.contract.metadata import ExportMetadata
from trm_edge.runtime.backends.openvino import OpenVinoBackend

PRODUCTS = ("MatMul", "FullyConnected", "FullyConnectedQuantizedLegacy", "FullyConnectedQuantized", "Convolution")


@dataclass
class OpRun:
    name: str
    op: str  # OpenVINO's node type after its transformations (FullyConnected, MatMul, Reorder, ...)
    kernel: str  # the implementation that ran (brgemm_avx512_bf16, jit_uni_f32, ...)
    ms: float


@dataclass
class StepProfile:
    precision: str
    batch: int
    runs: list[OpRun] = field(default_factory=list)

    @property
    def total_ms(self) -> float:
        return sum(r.ms for r in self.runs)

    def by_op(self) -> list[dict[str, Any]]:
        """Per op type: ms, share of the step and the kernels that ran it, the costliest first."""
        times: dict[str, float] = defaultdict(float)
        kernels: dict[str, Counter[str]] = defaultdict(Counter)
        for run in self.runs:
            times[run.op] += run.ms
            kernels[run.op][run.kernel] += 1
        total = self.total_ms or 1.0
        return [{"op": op, "ms": round(ms, 2), "share": round(ms / total, 3), "kernels": dict(kernels[op])}
                for op, ms in sorted(times.items(), key=lambda item: -item[1])]

    def products(self) -> list[OpRun]:
        """The matrix products that ran (each once per node)."""
        return [r for r in self.runs if r.op in PRODUCTS]

    def share(self, op: str) -> float:
        return sum(r.ms for r in self.runs if r.op == op) / (self.total_ms or 1.0)


def profile_step(export_dir: Path, meta: ExportMetadata, precision: str, batch: int, steps: int = 3,
                 tokens: np.ndarray | None = None) -> StepProfile:
    """The counters of the last of `steps` steps at `batch` slots (every slot full)."""
    backend = OpenVinoBackend(export_dir, meta, batch, None, precision, options={"PERF_COUNT": True})
    if tokens is None:
        tokens = np.ones((batch, meta.model.seq_len), dtype=np.int32)
    rows = np.resize(np.arange(len(tokens)), batch)
    backend.set_inputs(tokens[rows], np.zeros(batch, dtype=np.int32))
    backend.step(np.ones(batch, dtype=bool))
    for _ in range(max(1, steps - 1)):
        backend.step(np.zeros(batch, dtype=bool))
    runs = [OpRun(info.node_name, info.node_type, info.exec_type, info.real_time.total_seconds() * 1e3)
            for info in backend.request.profiling_info if info.exec_type not in ("undef", "")]
    return StepProfile(precision, batch, runs)
