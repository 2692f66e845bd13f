"""Which backend and precision `auto` means on this machine, and opening the first that works.

On a GPU: a native TensorRT engine built here, else ONNX Runtime's TensorRT or CUDA provider, at
the export's precision. On a CPU, by measurement (benchmarks/step_peers.py): OpenVINO at bf16 where
the CPU runs bf16 natively (AVX-512 BF16, AMX; OpenVINO reports it), else ONNX Runtime fp32. A
lower precision is used only after it passes the check in precision_check.py; when it does not,
auto falls back to the next choice and says why (`doctor`, `bench`).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trm_edge.errors import TrmEdgeError
from trm_edge.runtime.backend import BACKENDS, Backend, create_backend, pick_backend
from trm_edge.runtime.export_metadata import ExportMetadata
from trm_edge.runtime.precision_check import check_precision

# auto: the export's own precision, or the lowest one the hardware runs natively and that passes
# the precision check; the others are asked for explicitly.
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
# Backends whose batch width follows the work (state in host arrays).
RESIZABLE = ("ort-cpu", "openvino")


@dataclass(frozen=True)
class Choice:
    """A backend and precision to try, and why (what `doctor` and `bench` report)."""

    backend: str
    precision: str
    why: str


def backend_choices(name: str, export_dir: Path, meta: ExportMetadata, precision: str = "auto") -> list[Choice]:
    """What to try, in order, for `name` and `precision`: one choice when both are explicit; for
    auto, the fastest first (each later one is the fallback when an earlier one cannot load or its
    lower precision fails the check)."""
    if precision not in PRECISIONS:
        raise TrmEdgeError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    if name == "openvino" or name.startswith("openvino:"):
        device = name.partition(":")[2] or "CPU"
        if precision != "auto":
            return [Choice(name, precision, "asked for")]
        lower = _native_lower_precision(device, meta.precision)
        fp32 = Choice(name, "fp32", "the export's precision")
        return [Choice(name, lower, f"{device} runs {lower} natively"), fp32] if lower else [fp32]
    if name != "auto":
        if name not in BACKENDS:
            raise TrmEdgeError(f"backend {name!r} is not one of auto, {', '.join(BACKENDS)}, openvino:DEVICE")
        return [Choice(name, _graph_precision(name, meta, precision), "asked for")]
    gpu = pick_backend(export_dir, meta)
    if gpu != "ort-cpu":
        return [Choice(gpu, _graph_precision(gpu, meta, precision), "a GPU backend that works here")]
    return cpu_choices(meta.precision, precision)


def cpu_choices(export_precision: str = "fp32", precision: str = "auto") -> list[Choice]:
    """What auto tries on a CPU, fastest first, for an export of `export_precision`."""
    choices = []
    has_ort = importlib.util.find_spec("onnxruntime") is not None
    has_openvino = importlib.util.find_spec("openvino") is not None
    if has_openvino and export_precision == "fp32" and precision in ("auto", "bf16", "fp16"):
        lower = _native_lower_precision("CPU", export_precision) if precision == "auto" else precision
        if lower:
            choices.append(Choice("openvino", lower, f"this CPU runs {lower} natively (OpenVINO reports it)"))
    if has_ort and precision in ("auto", export_precision):
        # Measured (benchmarks/step_peers.py): ONNX Runtime's fp32 step is 1.2-1.3x OpenVINO's on a
        # Zen 3 CPU without bf16, so fp32 runs on ONNX Runtime when it is installed.
        choices.append(Choice("ort-cpu", export_precision, f"ONNX Runtime at the export's {export_precision}: the "
                              "fastest CPU step measured without a lower native precision"))
    if has_openvino and export_precision == "fp32" and precision in ("auto", "fp32"):
        choices.append(Choice("openvino", "fp32", "fp32 on OpenVINO (where ONNX Runtime is missing or cannot load)"))
    if not choices:
        if precision != "auto":
            raise TrmEdgeError(f"no CPU backend here runs {precision} for a {export_precision} export: use "
                               "--precision auto")
        raise TrmEdgeError("no runtime backend is installed: pip install 'trm-edge[cpu]' (ONNX Runtime) or "
                           "'trm-edge[openvino]'")
    return choices


def _native_lower_precision(device: str, export_precision: str) -> str | None:
    """bf16 (or fp16) when OpenVINO runs it natively on `device` and the export is fp32."""
    if export_precision != "fp32":
        return None
    from trm_edge.runtime.openvino_backend import native_precisions

    native = native_precisions(device)
    return next((p for p in ("bf16", "fp16") if p in native), None)


def _graph_precision(name: str, meta: ExportMetadata, precision: str) -> str:
    """ONNX Runtime and TensorRT run the precision the graph was exported in."""
    if precision not in ("auto", meta.precision):
        raise TrmEdgeError(
            f"{name} runs the precision this export was made in ({meta.precision}): for {precision} on a CPU use "
            f"--backend openvino (where the CPU runs it natively), or export --precision {precision} for a GPU"
        )
    return meta.precision


@dataclass
class Opened:
    backend: Backend
    choice: Choice
    notes: list[str] = field(default_factory=list)  # why earlier choices were passed over


def open_backend(
    name: str, export_dir: Path, meta: ExportMetadata, max_batch: int, initial_slots: int, threads: int | None,
    precision: str = "auto", verifier: Any = None,
) -> Opened:
    """The first of `backend_choices` that loads (and, at a lower precision, passes the check).
    A resizable backend on a dynamic-batch export starts at `initial_slots`, others at max_batch."""
    choices = backend_choices(name, export_dir, meta, precision)
    notes: list[str] = []
    first_error: TrmEdgeError | None = None
    for i, choice in enumerate(choices):
        last = i == len(choices) - 1
        resizable = meta.dynamic_batch and choice.backend.partition(":")[0] in RESIZABLE
        width = min(max_batch, initial_slots) if resizable else max_batch
        try:
            backend = create_backend(choice.backend, export_dir, meta, width, threads, choice.precision)
            if choice.precision != meta.precision:  # lowered inside the backend: check it first
                twin = create_backend(choice.backend, export_dir, meta, 1, threads, meta.precision)
                check = check_precision(backend, twin, export_dir, meta, verifier)
                if not check.passed:
                    raise TrmEdgeError(f"{choice.precision} failed its check: {check.summary()}")
                notes.append(f"precision check passed: {check.summary()}")
        except TrmEdgeError as exc:
            first_error = first_error or exc
            if last:  # nothing opened: the first choice's reason is the one that matters (a damaged export, ...)
                raise first_error from None
            notes.append(f"{choice.backend} {choice.precision} passed over: {exc}")
            continue
        return Opened(backend, choice, notes)
    raise TrmEdgeError("no backend could be opened")  # unreachable: the last choice raises
