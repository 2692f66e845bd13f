"""The interface every backend implements, and how `auto` picks one.

A backend owns the device state of a fixed batch of slots and does three things: load (in its
constructor), take the puzzles now in the slots (`set_inputs`), and run one step (`step`). The
halting and continuous batching above it (solver.py) are written once for all of them. A backend
whose batch width can change (`can_reslot`) also resizes and moves slots (`resize`, `reslot`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

from trm_edge.runtime.export_metadata import ExportMetadata

BACKENDS = ("ort-cpu", "ort-cuda", "ort-trt", "tensorrt", "openvino")
# State dtypes numpy can hold (a bf16 state needs a backend that keeps it on the device).
NUMPY_STATE_DTYPES = {"float32": np.float32, "float16": np.float16}


class Backend(Protocol):
    name: str
    batch: int  # slots now
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

    def describe(self) -> dict[str, Any]:
        """Backend name, library versions and device, for benchmark reports."""
        ...


def create_backend(
    name: str, export_dir: Path, meta: ExportMetadata, batch: int, threads: int | None, precision: str = "fp32"
) -> Backend:
    """One backend at one precision (runtime/backend_choice.py says what auto tries)."""
    if name == "tensorrt":
        from trm_edge.runtime.tensorrt_backend import TensorRTBackend

        return TensorRTBackend(export_dir, meta, batch)
    if name == "openvino" or name.startswith("openvino:"):
        from trm_edge.runtime.openvino_backend import OpenVinoBackend

        return OpenVinoBackend(export_dir, meta, batch, threads, precision, name.partition(":")[2] or "CPU")
    from trm_edge.runtime.onnxruntime_backend import OnnxRuntimeBackend

    return OnnxRuntimeBackend(export_dir, meta, name, batch, threads)


def pick_backend(export_dir: Path, meta: ExportMetadata) -> str:
    """The fastest backend that works here: a native TensorRT engine built for this GPU, then ONNX
    Runtime's TensorRT and CUDA providers, then its CPU provider."""
    from trm_edge.runtime.gpu_info import cuda_gpu

    gpu = cuda_gpu()
    if gpu is not None:
        try:
            import tensorrt

            engine_for_here = any(
                e.get("compute_capability") == gpu.sm and e.get("tensorrt") == tensorrt.__version__
                for e in meta.engines
            )
            if engine_for_here:
                return "tensorrt"
        except ImportError:
            pass
        try:
            import onnxruntime

            available = onnxruntime.get_available_providers()
            if "TensorrtExecutionProvider" in available:
                return "ort-trt"
            if "CUDAExecutionProvider" in available:
                return "ort-cuda"
        except ImportError:
            pass
    return "ort-cpu"
