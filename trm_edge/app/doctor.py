"""`trm-edge doctor`: what this machine can run, checked rather than assumed.

Lists the installed pieces (torch and its CUDA, onnx, ONNX Runtime and the providers that really
load, TensorRT, the GPU the driver sees). With an export directory it also builds a TensorRT
engine from it and loads it back: the one command that verifies the engine path on a user's
machine, since this project's CI has no GPU and no TensorRT.
"""

from __future__ import annotations

import importlib
import platform
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.markup import escape
from rich.table import Table

from trm_edge import __version__

if TYPE_CHECKING:
    from rich.console import Console

    from trm_edge.runtime.solver import Solver


def _version(module: str) -> str | None:
    try:
        return str(importlib.import_module(module).__version__)
    except Exception:  # missing, or present but broken (e.g. a CUDA wheel without CUDA)
        return None


def environment_rows() -> list[tuple[str, str]]:
    from trm_edge.gpu_info import cuda_gpu

    rows = [("python", platform.python_version()), ("trm-edge", __version__), ("numpy", _version("numpy") or "-")]
    torch_version = _version("torch")
    if torch_version:
        import torch

        cuda = f", CUDA {torch.version.cuda}" if torch.version.cuda else ", CPU build"
        usable = " (GPU usable)" if torch.cuda.is_available() else ""
        rows.append(("torch", torch_version + cuda + usable))
    else:
        rows.append(("torch", "not installed (runtime-only install)"))
    rows.append(("onnx", _version("onnx") or "not installed"))
    ort = _version("onnxruntime")
    if ort:
        import onnxruntime

        rows.append(("onnxruntime", f"{ort}, providers offered: {', '.join(onnxruntime.get_available_providers())}"))
    else:
        rows.append(("onnxruntime", "not installed (pip install 'trm-edge[cpu]' or '[gpu]')"))
    rows.append(("CPU", cpu_summary()))
    openvino = _version("openvino")
    if openvino:
        import openvino as ov

        from trm_edge.runtime.backends.openvino import native_precisions

        devices = ov.Core().available_devices
        native = "; ".join(f"{d}: {', '.join(native_precisions(d)) or '-'}" for d in devices)
        rows.append(("openvino", f"{openvino}, devices {', '.join(devices)} (native precisions {native})"))
    else:
        rows.append(("openvino", "not installed (pip install 'trm-edge[openvino]': bf16 on CPUs that have it)"))
    rows.append(("tensorrt", _version("tensorrt") or "not installed"))
    gpu = cuda_gpu()
    rows.append(("GPU", f"{gpu.name} ({gpu.sm})" if gpu else "none found by the CUDA driver"))
    return rows


def cpu_summary() -> str:
    """The CPU's name and the vector extensions that decide its fastest step (Linux /proc/cpuinfo)."""
    from trm_edge.hardware import NO_NATIVE_BF16_ENV, cpu_name_and_flags, native_half_precision_switched_off

    name, found = cpu_name_and_flags()
    switched = (f"; treated as without native bf16/fp16 ({NO_NATIVE_BF16_ENV})"
                if native_half_precision_switched_off() else "")
    return f"{name} ({', '.join(found) or 'no vector extensions listed'}{switched})"


def auto_rows() -> list[tuple[str, str]]:
    """What `--backend auto` considers on this machine's CPU for an fp32 export."""
    from trm_edge.errors import TrmEdgeError
    from trm_edge.runtime.backends.choice import cpu_choices

    try:
        choices = cpu_choices("fp32")
    except TrmEdgeError as exc:
        return [("auto (CPU)", str(exc))]
    rows = [("auto (CPU)", "the fastest step measured per export among: "
             + "; ".join(f"{c.backend} {c.precision} ({c.why})" for c in choices)
             + " (doctor --export DIR shows the figures)")]
    return rows


def choice_report(export_dir: Path, solver: Solver) -> list[str]:
    """What auto runs for this export here, why, the step times it measured, the precision check
    and every candidate passed over."""
    opened = solver.opened
    lines = [f"[green]{export_dir}[/]: auto runs {solver.engine}"
             + (f" ({solver.choice.why})" if solver.choice else "")]
    if opened is None:
        return lines
    if opened.remembered:
        lines.append("  remembered from an earlier load on this machine (runtime_choices.json in the export)")
    for label, ms in sorted(opened.step_ms.items(), key=lambda item: item[1]):
        spread = opened.spread_ms.get(label)
        within = f" (spread {spread:.3g})" if spread is not None else ""
        lines.append(f"  {label:30} {ms:8.3f} ms per step{within} at {opened.timed_width} slots")
    lines += [f"  {check}" for check in opened.checks]
    lines += [f"  {note}" for note in opened.notes]
    return lines


def choice_record(export_dir: Path, solver: Solver) -> dict[str, Any]:
    """`choice_report`'s figures as data (doctor --json)."""
    opened = solver.opened
    record: dict[str, Any] = {"export": str(export_dir), "runs": solver.engine,
                              "why": solver.choice.why if solver.choice else None}
    if opened is not None:
        record |= {"remembered": opened.remembered, "step_ms": opened.step_ms, "spread_ms": opened.spread_ms,
                   "timed_width": opened.timed_width, "checks": list(opened.checks), "notes": list(opened.notes)}
    return record


def environment_table() -> Table:
    from trm_edge.export.format_table import doctor_rows as format_rows
    from trm_edge.runtime.backends.registry import doctor_rows

    table = Table(title="trm-edge doctor", show_header=False)
    for key, value in environment_rows() + doctor_rows() + format_rows() + auto_rows():
        table.add_row(key, escape(value))  # '[gpu]' in a pip command is not markup
    return table


def check_engine(export_dir: Path, console: Console) -> Path:
    """Build an engine from a copy of `export_dir` (batch 1-8) and deserialize it again."""
    from trm_edge.export.tensorrt_engine import BatchProfile, build_engine, import_tensorrt

    trt = import_tensorrt()
    work = Path(tempfile.mkdtemp(prefix="trm-edge-doctor-"))
    for item in Path(export_dir).iterdir():
        if item.suffix in (".onnx", ".json"):
            shutil.copy(item, work / item.name)
    path = build_engine(work, BatchProfile(1, 4, 8), workspace_gib=1.0, console=console)
    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    engine = runtime.deserialize_cuda_engine(path.read_bytes())
    if engine is None:
        from trm_edge.errors import TrmEdgeError

        raise TrmEdgeError(f"TensorRT built {path.name} but could not deserialize it")
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    console.print(f"[green]engine ok[/]: {path} ({', '.join(names)})")
    return path
