"""Creating ONNX Runtime sessions that are what they say they are.

ONNX Runtime quietly falls back to the CPU when the CUDA or TensorRT provider cannot load (it
only logs), and onnxruntime-gpu without CUDA runs on the CPU. Reporting CPU figures as GPU ones is
worse than failing, so a session that did not get the provider asked for is an error here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trm_edge.errors import TrmEdgeError
from trm_edge.runtime.export_metadata import ExportMetadata


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
    """The graph's inputs and outputs are the ones trm_edge.json describes (names, and every fixed
    dimension), so a mismatched or swapped graph file fails here, not mid-solve."""
    spec = meta.graphs[graph]
    actual = {t.name: t.shape for t in [*session.get_inputs(), *session.get_outputs()]}
    for tensor in spec.tensors:
        shape = actual.get(tensor.name)
        fixed_differs = shape is not None and (
            len(shape) != len(tensor.shape)
            or any(isinstance(a, int) and isinstance(b, int) and a != b for a, b in zip(shape, tensor.shape))  # noqa: B905
        )
        if shape is None or fixed_differs:
            raise TrmEdgeError(
                f"{spec.file} does not match trm_edge.json: tensor {tensor.name!r} is "
                f"{'absent' if shape is None else shape} in the graph, {list(tensor.shape)} in the metadata; "
                "export again"
            )
    takes_ids = "puzzle_identifiers" in {t.name for t in session.get_inputs()}
    if graph == "init" and takes_ids != meta.model.uses_puzzle_identifiers:
        raise TrmEdgeError(
            f"{spec.file} does not match trm_edge.json: the graph {'takes' if takes_ids else 'has no'} "
            f"puzzle_identifiers input, the metadata says uses_puzzle_identifiers="
            f"{meta.model.uses_puzzle_identifiers}; export again"
        )


def _provider_hint(provider: str) -> str:
    if provider == "CUDAExecutionProvider":
        return (
            "install onnxruntime-gpu (pip install 'trm-edge[gpu]', after removing onnxruntime) and make "
            "the CUDA 13 runtime and cuDNN 9 loadable (onnxruntime.preload_dlls() loads a CUDA torch's)"
        )
    if provider == "TensorrtExecutionProvider":
        return "install onnxruntime-gpu and TensorRT's libraries (libnvinfer) where ONNX Runtime can load them"
    return "install onnxruntime"
