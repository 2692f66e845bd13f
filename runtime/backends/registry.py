"""Every backend in one table: adding one is its module plus one entry in BACKENDS.

An entry names the module that holds the backend (imported only when it is used) and says what
the rest of trm-edge needs to know without importing it: where it runs, whether its batch width
follows the work, the extra that installs it, which step variants it runs (`runs`: what `auto`
weighs, what a remembered choice may hold), the precisions `bench --backend all` tries, and its place in
`auto`'s order on a GPU. The module provides:

- `create(name, export_dir, meta, batch, threads, precision[, static_width][, streams]) -> Backend`
  (backends/base.py's protocol; `static_width` and `streams` only where the entry runs them);
- `unusable(name, export_dir=None, meta=None) -> str | None`: why it cannot run here (None: it can;
  with an export, whether it can run that one), for `auto` on a GPU and `doctor`'s rows;
- `lowered_precisions(name) -> list[str]` where the entry runs "lowered": which this device runs natively.

`openvino` also takes a device (`openvino:GPU`, `openvino:NPU`): the entry's `devices`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trm_edge.contract.metadata import ExportMetadata
from trm_edge.errors import TrmEdgeError
from trm_edge.precisions import LOWERED

# The step variants a backend may run (BackendEntry.runs):
EXPORT = "export"  # the export's own step at its precision
LOWERED_STEP = "lowered"  # an fp32 step lowered to bf16/fp16 inside the backend's compiled model
INT8_STEP = "int8"  # the export's int8 step (step_int8.onnx)
STATIC = "static"  # a step compiled for the one width it runs (static shapes)
STREAMS = "streams"  # the batch split over requests that run at once, one per share of the cores


@dataclass(frozen=True)
class BackendEntry:
    name: str
    module: str  # trm_edge.runtime.backends.<module>: `create` and `unusable`
    runs_on: str  # "cpu" | "gpu" (with a device suffix: the device's own kind)
    resizable: bool  # the width follows the work (state in host arrays), on the CPU
    extra: str  # pip install 'trm-edge[EXTRA]'
    summary: str  # what runs the step (help, doctor, README)
    runs: tuple[str, ...] = (EXPORT,)  # the step variants it runs (above)
    matrix_precisions: tuple[str, ...] = ("auto",)  # what `bench --backend all` tries ("auto": the export's)
    gpu_order: int | None = None  # auto on a GPU tries the lowest first
    devices: bool = False  # takes NAME:DEVICE
    program: bool = False  # runs the export's programs of its name (export --format NAME), not its ONNX graphs

    def load(self) -> Any:
        return importlib.import_module(f"trm_edge.runtime.backends.{self.module}")

    @property
    def runs_int8(self) -> bool:
        return INT8_STEP in self.runs

    @property
    def lowers(self) -> bool:
        return LOWERED_STEP in self.runs

    @property
    def runs_static(self) -> bool:
        return STATIC in self.runs

    @property
    def runs_streams(self) -> bool:
        return STREAMS in self.runs

    def precisions(self, export_precision: str, has_int8: bool) -> list[str]:
        """Every precision it may run a step of such an export in (the hardware decides which of the
        lowered ones it does): what a remembered choice for it may hold."""
        lowered = list(LOWERED) if self.lowers and export_precision == "fp32" else []
        return [export_precision, *lowered, *(["int8"] if self.runs_int8 and has_int8 else [])]


BACKENDS: dict[str, BackendEntry] = {e.name: e for e in (
    BackendEntry("ort-cpu", "onnxruntime", "cpu", True, "cpu",
                 "ONNX Runtime, CPU provider, in calls of at most 16 rows", (EXPORT, INT8_STEP), ("auto", "int8")),
    BackendEntry("ort-cuda", "onnxruntime", "gpu", False, "gpu", "ONNX Runtime, CUDA provider", gpu_order=2),
    BackendEntry("ort-trt", "onnxruntime", "gpu", False, "gpu", "ONNX Runtime, TensorRT provider with an engine cache",
                 gpu_order=1),
    BackendEntry("tensorrt", "tensorrt", "gpu", False, "gpu", "native TensorRT engines (trm-edge build-engine), "
                 "each step a replayed CUDA graph", (EXPORT, INT8_STEP), gpu_order=0),
    BackendEntry("openvino", "openvino", "cpu", True, "openvino", "OpenVINO on the same graphs, bf16/fp16 inside the "
                 "compiled model where the CPU runs it natively", (EXPORT, LOWERED_STEP, INT8_STEP, STATIC, STREAMS),
                 ("fp32", "bf16", "fp16", "int8"), devices=True),
    BackendEntry("executorch", "programs", "cpu", True, "executorch", "ExecuTorch's runtime on the export's .pte "
                 "programs (XNNPACK), as an Android or iOS app runs them", matrix_precisions=("fp32",), program=True),
    BackendEntry("litert", "programs", "cpu", True, "litert", "LiteRT's interpreter on the export's .tflite "
                 "programs (XNNPACK), as an Android app runs them", matrix_precisions=("fp32",), program=True),
)}


def entry(name: str) -> BackendEntry:
    """The entry for `name` (NAME or NAME:DEVICE), or a clear error listing the names."""
    base, _, device = name.partition(":")
    found = BACKENDS.get(base)
    if found is None or (device and not found.devices) or (not device and name.endswith(":")):
        raise TrmEdgeError(f"backend {name!r} is not one of {backend_names()}")
    return found


def backend_names() -> str:
    """'auto, ort-cpu, ..., openvino[:DEVICE]' for messages and help."""
    return ", ".join(["auto", *(f"{e.name}[:DEVICE]" if e.devices else e.name for e in BACKENDS.values())])


def is_resizable(name: str) -> bool:
    """Whether the width of `name` follows the work: only on the CPU, where its state is host arrays
    (`openvino:GPU` keeps its width, as ort-cuda does)."""
    found, device = entry(name), name.partition(":")[2]
    return found.resizable and device in ("", "CPU")


def initial_width(name: str, meta: ExportMetadata, slots: int, first_width: int) -> int:
    """The width a backend opens with: a resizable one on a dynamic-batch export starts at
    `first_width` (at most the slots) and widens for waiting puzzles; any other is set once, at the
    slots; a fixed-batch export's at its batch."""
    if not meta.dynamic_batch:
        return fixed_batch_of(meta)
    return min(slots, first_width) if is_resizable(name) else slots


def fixed_batch_of(meta: ExportMetadata) -> int:
    """The one width a fixed-batch export (export --batch N) runs: its graphs' (or engine's, or
    programs') batch axis is N."""
    return int(meta.batch_size or 1)


def fixed_batch_error(meta: ExportMetadata, how: str) -> TrmEdgeError:
    """Asking a fixed-batch export for another width: one line, with `how` to ask for its own."""
    return TrmEdgeError(f"this export has a fixed batch of {meta.batch_size}: {how}, or export again without "
                        "--batch for a batch that follows the work")


def create_backend(
    name: str, export_dir: Path, meta: ExportMetadata, width: int, threads: int | None, precision: str = "fp32",
    static_width: int | None = None, streams: int | None = None, float_precision: str | None = None,
) -> Any:
    """One backend at one precision, with a step compiled for `static_width` and the batch split
    over `streams` where it runs those (backends/choice.py says what auto tries)."""
    found = entry(name)
    if not meta.dynamic_batch and width != fixed_batch_of(meta):
        # Caught here for every backend (OpenVINO's own message is an internal error about tensor shapes).
        raise fixed_batch_error(meta, f"open it at {fixed_batch_of(meta)} slots")
    forms: dict[str, int | str] = {}
    if static_width is not None:
        _require(found, STATIC, "compile a step for one width (static shapes)")
        forms["static_width"] = static_width
    if streams is not None:
        _require(found, STREAMS, "split the batch over streams")
        forms["streams"] = streams
    if float_precision is not None:
        _require(found, LOWERED_STEP, "lower the int8 step's float parts")
        forms["float_precision"] = float_precision
    return found.load().create(name, export_dir, meta, width, threads, precision, **forms)


def _require(found: BackendEntry, variant: str, what: str) -> None:
    if variant not in found.runs:
        able = ", ".join(e.name for e in BACKENDS.values() if variant in e.runs)
        raise TrmEdgeError(f"{found.name} does not {what}; of the backends, {able} do")


def gpu_backend(export_dir: Path, meta: ExportMetadata) -> str | None:
    """The first GPU backend in auto's order that can run this export here, None without one."""
    from trm_edge.gpu_info import cuda_gpu

    if cuda_gpu() is None:
        return None
    for found in sorted((e for e in BACKENDS.values() if e.gpu_order is not None), key=lambda e: e.gpu_order or 0):
        if found.load().unusable(found.name, export_dir, meta) is None:
            return found.name
    return None


def doctor_rows() -> list[tuple[str, str]]:
    """One row per backend: usable here, or why not and what installs it."""
    rows = []
    for found in BACKENDS.values():
        try:
            reason = found.load().unusable(found.name)
        except ImportError:
            reason = "not installed"
        status = "usable" if reason is None else f"not usable: {reason} (pip install 'trm-edge[{found.extra}]')"
        rows.append((f"backend {found.name}", f"{status}; {found.summary}"))
    return rows


def matrix() -> list[tuple[str, str]]:
    """(backend, precision) pairs `bench --backend all` tries, in table order."""
    return [(e.name, p) for e in sorted(BACKENDS.values(), key=lambda e: e.runs_on != "cpu")
            for p in e.matrix_precisions]
