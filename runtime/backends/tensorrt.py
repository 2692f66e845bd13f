"""Native TensorRT backend: engines built on this GPU, state ping-ponged between two device
buffers, each step replayed from a captured CUDA graph.

Device memory and streams come from cuda-python (`pip install cuda-python`), not torch. Two CUDA
graphs are captured per batch size, one reading buffer pair A and writing B, one the reverse, so a
step is one graph launch plus two small copies (the reset flags in, answers and halting logits out).

Verified only where TensorRT and a GPU exist: `trm-edge doctor --engine EXPORT_DIR`, and the GPU
tests (`pytest -m tensorrt`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from trm_edge.contract.metadata import NUMPY_STATE_DTYPES, ExportMetadata
from trm_edge.errors import TrmEdgeError
from trm_edge.gpu_info import cuda_gpu

ITEMSIZE = {"float32": 4, "float16": 2, "bfloat16": 2, "int32": 4, "bool": 1}


def _cudart() -> Any:
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        try:
            from cuda import cudart  # older cuda-python
        except ImportError:
            raise TrmEdgeError(
                "the tensorrt backend needs cuda-python for device memory: pip install cuda-python"
            ) from None
    return cudart


def _check(result: Any) -> Any:
    """cuda-python returns (error, *values); raise on an error, return the values."""
    err, *values = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise TrmEdgeError(f"CUDA error {err}")
    return values[0] if len(values) == 1 else values


class TensorRTBackend:
    name = "tensorrt"
    # Buffers and CUDA graphs are built for one width, set at load (the solver's slots).
    can_reslot = False

    def __init__(self, export_dir: Path, meta: ExportMetadata, width: int, precision: str | None = None) -> None:
        try:
            import tensorrt as trt
        except ImportError:
            raise TrmEdgeError("the tensorrt backend needs TensorRT's Python package (10.x or 11.x)") from None
        gpu = cuda_gpu()
        if gpu is None:
            raise TrmEdgeError("the tensorrt backend needs an NVIDIA GPU; none was found")
        self.trt, self.cudart, self.width = trt, _cudart(), width
        self.precision = meta.precision  # an engine runs the graph's own dtypes (strongly typed)
        engines = {
            e["graph"]: e
            for e in meta.engines
            if e.get("compute_capability") == gpu.sm and e.get("tensorrt") == trt.__version__
        }
        if precision == "int8":  # the int8 step's engine in the step's place (build-engine builds both)
            if "step_int8" not in engines:
                raise TrmEdgeError(f"no int8 TensorRT engine for this GPU ({gpu.sm}) in {export_dir}: export with "
                                   f"--precision int8, then run 'trm-edge build-engine {export_dir}' here")
            engines["step"] = engines.pop("step_int8")
            self.precision = "int8"
        engines.pop("step_int8", None)
        if set(engines) != {"init", "step"}:
            raise TrmEdgeError(
                f"no TensorRT {trt.__version__} engines for this GPU ({gpu.sm}) in {export_dir}: "
                f"run 'trm-edge build-engine {export_dir}' here"
            )
        step_profile = engines["step"]["profile"]
        if not step_profile["min"] <= width <= step_profile["max"]:
            raise TrmEdgeError(
                f"{width} slots lie outside the engine's batch profile {step_profile['min']}-"
                f"{step_profile['max']}: rebuild it with build-engine --max-batch, or ask fewer --slots"
            )
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.contexts = {}
        for graph in ("init", "step"):
            engine = runtime.deserialize_cuda_engine((export_dir / engines[graph]["file"]).read_bytes())
            if engine is None:
                raise TrmEdgeError(f"could not load {engines[graph]['file']} (built by another TensorRT?)")
            self.contexts[graph] = (engine, engine.create_execution_context())
        self.stream = _check(self.cudart.cudaStreamCreate())
        self.buffers: dict[str, int] = {}
        self.host: dict[str, np.ndarray] = {}
        self.specs = {t.name: t.to_dict() for g in meta.graphs.values() for t in g.tensors}
        for name in (
            "tokens",
            "puzzle_identifiers",
            "x_emb",
            "z_H",
            "z_L",
            "z_H_next",
            "z_L_next",
            "reset",
            "logits",
            "answer",
            "q_halt",
            "q_continue",
        ):
            if name in self.specs:
                self.buffers[name] = self._alloc(name)
        self.uses_ids = meta.model.uses_puzzle_identifiers
        self.answer = np.zeros((width, meta.model.seq_len), dtype=np.int32)
        self.q_halt = np.zeros(width, dtype=np.float32)
        self.q_continue = np.zeros(width, dtype=np.float32)
        self.graphs = [self._capture(flip) for flip in (False, True)]
        self.flip = False

    def _shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.width if isinstance(d, str) else d for d in self.specs[name]["shape"])

    def _alloc(self, name: str) -> int:
        nbytes = int(np.prod(self._shape(name))) * ITEMSIZE[self.specs[name]["dtype"]]
        ptr = _check(self.cudart.cudaMalloc(nbytes))
        _check(self.cudart.cudaMemset(ptr, 0, nbytes))
        return int(ptr)

    def _bind(self, graph: str, addresses: dict[str, int]) -> Any:
        engine, context = self.contexts[graph]
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            if engine.get_tensor_mode(name) == self.trt.TensorIOMode.INPUT:
                context.set_input_shape(name, self._shape(name))
            context.set_tensor_address(name, addresses[name])
        return context

    def _capture(self, flip: bool) -> Any:
        """A CUDA graph of one step reading one state pair and writing the other."""
        b = self.buffers
        src, dst = (("z_H_next", "z_L_next"), ("z_H", "z_L")) if flip else (("z_H", "z_L"), ("z_H_next", "z_L_next"))
        addresses = {name: b[name] for name in ("x_emb", "reset", "logits", "answer", "q_halt", "q_continue")}
        addresses.update({"z_H": b[src[0]], "z_L": b[src[1]], "z_H_next": b[dst[0]], "z_L_next": b[dst[1]]})
        context = self._bind("step", addresses)
        context.execute_async_v3(self.stream)  # first run outside capture: lets TensorRT allocate
        _check(self.cudart.cudaStreamSynchronize(self.stream))
        mode = self.cudart.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        _check(self.cudart.cudaStreamBeginCapture(self.stream, mode))
        context.execute_async_v3(self.stream)
        graph = _check(self.cudart.cudaStreamEndCapture(self.stream))
        return _check(self.cudart.cudaGraphInstantiate(graph, 0))

    def _to_device(self, name: str, array: np.ndarray) -> None:
        kind = self.cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        _check(self.cudart.cudaMemcpyAsync(self.buffers[name], array.ctypes.data, array.nbytes, kind, self.stream))

    def _to_host(self, name: str, array: np.ndarray) -> None:
        kind = self.cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        _check(self.cudart.cudaMemcpyAsync(array.ctypes.data, self.buffers[name], array.nbytes, kind, self.stream))

    def set_inputs(self, tokens: np.ndarray, puzzle_identifiers: np.ndarray) -> None:
        self._tokens = np.ascontiguousarray(tokens, dtype=np.int32)  # kept alive until the copy is done
        self._ids = np.ascontiguousarray(puzzle_identifiers, dtype=np.int32)
        self._to_device("tokens", self._tokens)
        if self.uses_ids:
            self._to_device("puzzle_identifiers", self._ids)
        addresses: dict[str, int] = {n: self.buffers[n] for n in ("tokens", "puzzle_identifiers", "x_emb")
                                     if n in self.buffers}
        self._bind("init", addresses).execute_async_v3(self.stream)
        _check(self.cudart.cudaStreamSynchronize(self.stream))

    def step(self, reset: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        self._reset = np.ascontiguousarray(reset, dtype=bool)
        self._to_device("reset", self._reset)
        _check(self.cudart.cudaGraphLaunch(self.graphs[int(self.flip)], self.stream))
        self.flip = not self.flip
        self._to_host("answer", self.answer)
        self._to_host("q_halt", self.q_halt)
        self._to_host("q_continue", self.q_continue)
        _check(self.cudart.cudaStreamSynchronize(self.stream))
        return self.answer, self.q_halt, self.q_continue

    def _state_names(self) -> tuple[str, str]:
        """The buffers the next step reads (the pair the last step wrote)."""
        return ("z_H_next", "z_L_next") if self.flip else ("z_H", "z_L")

    def _row_bytes(self, name: str) -> int:
        shape = self._shape(name)
        return int(np.prod(shape[1:])) * ITEMSIZE[self.specs[name]["dtype"]]

    def read_state(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        kind = self.cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        out = []
        for name in self._state_names():
            dtype = self.specs[name]["dtype"]
            host = np.empty((len(rows), *self._shape(name)[1:]), np.uint16 if dtype == "bfloat16" else
                            NUMPY_STATE_DTYPES[dtype])
            size = self._row_bytes(name)
            for i, row in enumerate(np.asarray(rows).tolist()):
                _check(self.cudart.cudaMemcpyAsync(host[i].ctypes.data, self.buffers[name] + row * size, size, kind,
                                                   self.stream))
            _check(self.cudart.cudaStreamSynchronize(self.stream))
            out.append(bf16_to_float32(host) if dtype == "bfloat16" else host.astype(np.float32))
        return out[0], out[1]

    def write_state(self, rows: np.ndarray, z_H: np.ndarray, z_L: np.ndarray) -> None:
        kind = self.cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        for name, new in zip(self._state_names(), (z_H, z_L), strict=True):
            dtype = self.specs[name]["dtype"]
            host = np.ascontiguousarray(float32_to_bf16(new) if dtype == "bfloat16" else
                                        new.astype(NUMPY_STATE_DTYPES[dtype]))
            size = self._row_bytes(name)
            for i, row in enumerate(np.asarray(rows).tolist()):
                _check(self.cudart.cudaMemcpyAsync(self.buffers[name] + row * size, host[i].ctypes.data, size, kind,
                                                   self.stream))
            _check(self.cudart.cudaStreamSynchronize(self.stream))  # `host` must outlive the copies

    def resize(self, width: int) -> None:
        raise TrmEdgeError("the tensorrt backend keeps the width it was loaded with (the solver's slots)")

    def reslot(self, keep: np.ndarray, width: int) -> None:
        raise TrmEdgeError("the tensorrt backend keeps the width it was loaded with (the solver's slots)")

    def describe(self) -> dict[str, Any]:
        gpu = cuda_gpu()
        return {"backend": self.name, "tensorrt": self.trt.__version__, "device": gpu.name if gpu else "?"}


def bf16_to_float32(bits: np.ndarray) -> np.ndarray:
    """bfloat16 values held as uint16 bits -> float32 (bf16 is float32's upper half)."""
    return (bits.astype(np.uint32) << 16).view(np.float32)


def float32_to_bf16(values: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bits as uint16, rounded to nearest even (as the device rounds)."""
    bits = np.ascontiguousarray(values, np.float32).view(np.uint32)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)


def create(name: str, export_dir: Path, meta: ExportMetadata, width: int, threads: int | None,
           precision: str) -> TensorRTBackend:
    """The registry's factory: an engine runs the precision it was built in (int8: the int8 step's)."""
    return TensorRTBackend(export_dir, meta, width, precision)


def unusable(name: str, export_dir: Path | None = None, meta: ExportMetadata | None = None) -> str | None:
    """Why native TensorRT cannot run here (or this export: it needs an engine built for this GPU)."""
    gpu = cuda_gpu()
    if gpu is None:
        return "no GPU found by the CUDA driver"
    try:
        import tensorrt
    except ImportError:
        return "tensorrt is not installed (from NVIDIA's own index)"
    version = tensorrt.__version__
    if meta is not None and not any(e.get("compute_capability") == gpu.sm and e.get("tensorrt") == version
                                    for e in meta.engines):
        return f"the export has no engine for this GPU ({gpu.sm}) and TensorRT {version}: trm-edge build-engine"
    return None
