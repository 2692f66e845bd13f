"""Creating ONNX Runtime sessions that are what they say they are.

ONNX Runtime quietly falls back to the CPU when the CUDA or TensorRT provider cannot load (it
only logs), and onnxruntime-gpu without CUDA runs on the CPU. Reporting CPU figures as GPU ones is
worse than failing, so a session that did not get the provider asked for is an error here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trm_edge.contract.metadata import ExportMetadata
from trm_edge.errors import TrmEdgeError
from trm_edge.runtime.backends.graph_io import check_tensors


def import_onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise TrmEdgeError(
            "onnxruntime is not installed: pip install 'trm-edge[cpu]' (CPU) or 'trm-edge[gpu]' (CUDA), never both"
        ) from None
    return onnxruntime


def create_session(
    path: str | Path,
    providers: list[str | tuple[str, dict[str, Any]]],
    threads: int | None = None,
) -> Any:
    """An InferenceSession on exactly these providers (first = preferred), or a clear error."""
    ort = import_onnxruntime()
    wanted = [p if isinstance(p, str) else p[0] for p in providers]
    available = ort.get_available_providers()
    missing = [p for p in wanted if p not in available]
    if missing:
        raise TrmEdgeError(
            f"ONNX Runtime {ort.__version__} here offers {', '.join(available)}, not {', '.join(missing)}: "
            + _provider_hint(missing[0])
        )
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only; provider fall-backs are checked below instead
    if threads:
        options.intra_op_num_threads = threads
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as exc:  # ORT raises its own types (Fail, InvalidProtobuf, NoSuchFile...) for bad files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TrmEdgeError(
            f"ONNX Runtime cannot load {path}: {first[:300]}; the export is damaged or incomplete: export again"
        ) from None
    got = session.get_providers()
    if wanted[0] not in got:
        raise TrmEdgeError(
            f"ONNX Runtime could not load {wanted[0]} (it fell back to {', '.join(got)}); " + _provider_hint(wanted[0])
        )
    return session


def check_graph_io(session: Any, meta: ExportMetadata, graph: str) -> None:
    """The session's graph has the inputs and outputs trm_edge.json describes (graph_io.py)."""
    check_tensors(meta, graph, {t.name: t.shape for t in [*session.get_inputs(), *session.get_outputs()]},
                  {t.name for t in session.get_inputs()})


def _provider_hint(provider: str) -> str:
    if provider == "CUDAExecutionProvider":
        return (
            "install onnxruntime-gpu (pip install 'trm-edge[gpu]', after removing onnxruntime) and make "
            "the CUDA 13 runtime and cuDNN 9 loadable (onnxruntime.preload_dlls() loads a CUDA torch's)"
        )
    if provider == "TensorrtExecutionProvider":
        return "install onnxruntime-gpu and TensorRT's libraries (libnvinfer) where ONNX Runtime can load them"
    return "install onnxruntime"
