"""TensorRT engines from step.onnx, with the TensorRT Python API.

The ONNX already carries its precision in its dtypes, so the network is built strongly typed:
the only mode TensorRT 11 has, and available in the 10.x that JetPack ships. Engines are built on
the GPU that will run them (never shipped), named by TensorRT version, compute capability and
precision, with an optimisation profile over the batch range and a timing cache beside them.

Verified only where TensorRT is installed: `trm-edge doctor --engine EXPORT_DIR` (or
`pytest -m tensorrt`) builds and runs one on the machine at hand.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trm_edge.atomic import atomic_write, staged_for
from trm_edge.contract.export_dir import read_metadata, write_engine_record, write_metadata
from trm_edge.contract.metadata import ExportMetadata
from trm_edge.errors import ExportCheckFailed, TrmEdgeError
from trm_edge.export.files import ENGINE_NAME, TIMING_CACHE_NAME
from trm_edge.gpu_info import GpuInfo, cuda_gpu

MIN_TENSORRT_MAJOR = 10


@dataclass(frozen=True)
class BatchProfile:
    min: int = 1
    opt: int = 64
    max: int = 256

    def check(self, static_batch: int | None) -> None:
        if not 1 <= self.min <= self.opt <= self.max:
            raise TrmEdgeError(
                f"batch profile must satisfy 1 <= min <= opt <= max, got {self.min}/{self.opt}/{self.max}"
            )
        if static_batch is not None and not self.min == self.opt == self.max == static_batch:
            raise TrmEdgeError(
                f"this export has a fixed batch of {static_batch}: build with --min-batch/--opt-batch/"
                f"--max-batch {static_batch}, or re-export with a dynamic batch"
            )


def engine_name(graph: str, trt_version: str, gpu: GpuInfo, precision: str) -> str:
    """e.g. step.trt10.3.0.sm87.fp16.engine: an engine runs only where all three match."""
    return ENGINE_NAME.format(graph=graph, version=trt_version, sm=gpu.sm, precision=precision)


def timing_cache_name(trt_version: str, gpu: GpuInfo) -> str:
    return TIMING_CACHE_NAME.format(version=trt_version, sm=gpu.sm)


def profile_shapes(
    inputs: list[dict[str, Any]], profile: BatchProfile
) -> dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]:
    """(min, opt, max) shapes of every graph input, from the export's I/O spec."""
    shapes = {}
    for spec in inputs:
        dims = spec["shape"]
        shapes[spec["name"]] = tuple(
            tuple(b if isinstance(d, str) else d for d in dims) for b in (profile.min, profile.opt, profile.max)
        )
    return shapes  # type: ignore[return-value]


def import_tensorrt() -> Any:
    try:
        import tensorrt as trt
    except ImportError:
        raise TrmEdgeError(
            "TensorRT is not installed: engines need the 'tensorrt' Python package (10.x or 11.x) "
            "from NVIDIA's package index, or JetPack's python3-libnvinfer on a Jetson"
        ) from None
    major = int(trt.__version__.split(".")[0])
    if major < MIN_TENSORRT_MAJOR:
        raise TrmEdgeError(f"TensorRT {trt.__version__} is too old: trm-edge builds with 10.x or newer")
    return trt


def require_gpu() -> GpuInfo:
    gpu = cuda_gpu()
    if gpu is None:
        raise TrmEdgeError(
            "no NVIDIA GPU found (libcuda could not open a device): TensorRT engines are built on "
            "the GPU that will run them"
        )
    return gpu


def build_engine(
    export_dir: str | Path,
    profile: BatchProfile = BatchProfile(),
    workspace_gib: float = 4.0,
    console: Any | None = None,
) -> Path:
    """Build engines for init.onnx and step.onnx of `export_dir` on this GPU (and for step_int8.onnx
    where the export has one: TensorRT's explicit quantization reads its QDQ as they are), record
    them in trm_edge.json, and return the step engine's path."""
    export_dir = Path(export_dir)
    meta = read_metadata(export_dir)
    profile.check(None if meta.dynamic_batch else meta.batch_size)
    trt = import_tensorrt()
    gpu = require_gpu()
    cache_path = export_dir / timing_cache_name(trt.__version__, gpu)
    carry_timing_cache(cache_path)
    graphs = ("init", "step", *(("step_int8",) if meta.int8_step else ()))
    rebuilt = {engine_name(g, trt.__version__, gpu, "int8" if g == "step_int8" else meta.precision) for g in graphs}
    if any(e.get("file") in rebuilt for e in meta.engines):
        # A rebuild writes new bytes under the old engines' names: their records go first, or the
        # export would record hashes of bytes it no longer holds and be refused by every backend.
        write_metadata(export_dir, meta.without_engines(rebuilt))
        meta = read_metadata(export_dir)
    paths = {}
    for graph in graphs:
        started = time.perf_counter()
        precision = "int8" if graph == "step_int8" else meta.precision
        label = f"building TensorRT {trt.__version__} {graph} engine for {gpu.name} ({precision})"
        if console is not None:
            with console.status(label):
                paths[graph] = _build_one(trt, gpu, export_dir, meta, graph, profile, workspace_gib, cache_path)
        else:
            paths[graph] = _build_one(trt, gpu, export_dir, meta, graph, profile, workspace_gib, cache_path)
        meta = write_engine_record(
            export_dir,
            {
                "file": paths[graph].name,
                "graph": graph,
                "tensorrt": trt.__version__,
                "gpu": gpu.name,
                "compute_capability": gpu.sm,
                "precision": precision,
                "profile": {"min": profile.min, "opt": profile.opt, "max": profile.max},
                "timing_cache": cache_path.name,
                "build_seconds": round(time.perf_counter() - started, 1),
            },
            meta,
        )
    return paths["step"]


def _build_one(
    trt: Any,
    gpu: GpuInfo,
    export_dir: Path,
    meta: ExportMetadata,
    graph: str,
    profile: BatchProfile,
    workspace_gib: float,
    cache_path: Path,
) -> Path:
    spec = meta.graphs["step" if graph == "step_int8" else graph].to_dict()
    if graph == "step_int8":  # the float step's inputs and outputs, in the int8 step's file
        spec["file"] = meta.int8_step
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(export_dir / spec["file"])):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ExportCheckFailed(f"TensorRT could not parse {spec['file']}: {errors}",
                                "Export --format onnx for the ONNX export alone")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    opt_profile = builder.create_optimization_profile()
    for name, (lo, opt, hi) in profile_shapes(spec["inputs"], profile).items():
        opt_profile.set_shape(name, lo, opt, hi)
    config.add_optimization_profile(opt_profile)
    cache = config.create_timing_cache(cache_path.read_bytes() if cache_path.exists() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ExportCheckFailed(f"TensorRT failed to build the {graph} engine (see its log above)",
                                "Export --format onnx for the ONNX export alone")
    path = export_dir / engine_name(graph, trt.__version__, gpu, "int8" if graph == "step_int8" else meta.precision)
    atomic_write(path, bytes(serialized))  # a rebuild replaces the engine whole (write_engine_record records it)
    atomic_write(cache_path, bytes(config.get_timing_cache().serialize()))
    return path


def carry_timing_cache(cache_path: Path) -> None:
    """A re-export builds in a fresh staging folder: start from the timing cache the export it
    replaces kept, or TensorRT times every tactic again (minutes on a Jetson)."""
    previous = staged_for(cache_path.parent)
    if previous is not None and not cache_path.exists():
        with contextlib.suppress(OSError):  # none there (a first export): the build makes one
            shutil.copyfile(previous / cache_path.name, cache_path)


def describe(record: dict[str, Any]) -> str:
    return json.dumps(record, indent=2)
