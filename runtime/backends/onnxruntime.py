"""ONNX Runtime backends (CPU, CUDA, TensorRT provider) with the state kept on the device.

The state lives in two pairs of OrtValues on the session's device; each step reads one pair and
writes the other (IOBinding), then they swap, so z_H and z_L never travel to the host. The input
embedding x_emb also stays on the device; only tokens go in and answers/halting logits come out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from trm_edge.contract.metadata import NUMPY_STATE_DTYPES, ExportMetadata
from trm_edge.errors import TrmEdgeError
from trm_edge.runtime.backends.base import int8_step_file
from trm_edge.runtime.backends.onnxruntime_session import check_graph_io, create_session, import_onnxruntime

CPU_TILE = 16  # slots per ONNX Runtime call on the CPU (see resize)


class OnnxRuntimeBackend:
    def __init__(self, export_dir: Path, meta: ExportMetadata, name: str, width: int, threads: int | None,
                 precision: str | None = None) -> None:
        ort = import_onnxruntime()
        self.ort = ort
        self.name = name
        self.width = width
        self.meta = meta
        self.precision = meta.precision  # ONNX Runtime runs the graph's own dtypes
        step_file = meta.graphs["step"].file
        if precision == "int8":  # the export's int8 step (export --precision int8)
            step_file = int8_step_file(meta)
            self.precision = "int8"
        if name == "ort-cpu":
            providers: list[Any] = ["CPUExecutionProvider"]
            self.device = "cpu"
        elif name == "ort-cuda":
            providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
            self.device = "cuda"
        else:
            cache = export_dir / "ort_trt_cache"
            cache.mkdir(exist_ok=True)
            trt_options = {
                "trt_engine_cache_enable": True,
                "trt_engine_cache_path": str(cache),
                "trt_timing_cache_enable": True,
                "trt_timing_cache_path": str(cache),
            }
            providers = [("TensorrtExecutionProvider", trt_options), "CUDAExecutionProvider", "CPUExecutionProvider"]
            self.device = "cuda"
        state_dtype = meta.state_dtype
        if state_dtype not in NUMPY_STATE_DTYPES:
            where = "a GPU backend (ort-cuda, tensorrt)" if name == "ort-cpu" else "the tensorrt backend"
            raise TrmEdgeError(f"{state_dtype} state is not supported by {name}: use {where}, or export fp16/fp32")
        self.init = create_session(export_dir / meta.graphs["init"].file, providers, threads)
        self.session = create_session(export_dir / step_file, providers, threads)
        for graph, session in (("init", self.init), ("step", self.session)):
            check_graph_io(session, meta, graph)
        self.uses_ids = meta.model.uses_puzzle_identifiers

        self.dtype = NUMPY_STATE_DTYPES[state_dtype]
        # Changing the batch width copies the state through numpy: done on the CPU provider only
        # (on a GPU the batch keeps its width; unverified there otherwise).
        self.can_reslot = self.device == "cpu"
        self.resize(width)

    def resize(self, width: int) -> None:
        """(Re)allocate the buffers for `batch` slots; the sessions are kept.

        On the CPU the buffers are numpy arrays and each step runs ONNX Runtime on row tiles of at
        most CPU_TILE slots (OrtValues viewing the arrays, no copies): a wide ORT CPU call costs
        more per puzzle than a narrow one (8.1 vs 6.5 ms per puzzle-step at 64 vs 16 rows for the
        0.5M-parameter Sudoku TRM on a 2-core AMD EPYC), so a wide batch runs as narrow calls. On a
        GPU the whole batch is one call on device buffers."""
        ort, model = self.ort, self.meta.model
        self.width = width
        shape = (width, model.state_len, model.hidden_size)
        logits_shape = (width, model.seq_len, model.vocab_size)
        self.answer = np.zeros((width, model.seq_len), dtype=np.int32)
        self.q_halt = np.zeros(width, dtype=np.float32)
        self.q_continue = np.zeros(width, dtype=np.float32)
        # A fixed-batch export's graphs take their batch whole: no narrower tiles.
        tile = CPU_TILE if self.device == "cpu" and self.meta.dynamic_batch else width
        self.tiles = [slice(i, min(i + tile, width)) for i in range(0, width, tile)]

        def host_views(array: np.ndarray) -> list[Any]:
            return [ort.OrtValue.ortvalue_from_numpy(array[t]) for t in self.tiles]

        if self.device == "cpu":
            # Zeros: deterministic contents for slots never filled.
            self.state_arrays = [np.zeros(shape, self.dtype), np.zeros(shape, self.dtype)]  # z_H, z_L now
            self.spare_arrays = [np.zeros(shape, self.dtype), np.zeros(shape, self.dtype)]  # written by the step
            self.x_emb = host_views(np.zeros(shape, self.dtype))
            self.state = [host_views(a) for a in self.state_arrays]
            self.spare = [host_views(a) for a in self.spare_arrays]
            self.logits = host_views(np.zeros(logits_shape, np.float32))
        else:

            def device_value(shape: tuple[int, ...], dtype: Any) -> list[Any]:
                return [ort.OrtValue.ortvalue_from_shape_and_type(list(shape), dtype, self.device, 0)]

            self.x_emb = device_value(shape, self.dtype)
            self.state = [device_value(shape, self.dtype), device_value(shape, self.dtype)]
            self.spare = [device_value(shape, self.dtype), device_value(shape, self.dtype)]
            self.logits = device_value(logits_shape, np.float32)
        self._host_outputs = {
            name: host_views(array)
            for name, array in (("answer", self.answer), ("q_halt", self.q_halt), ("q_continue", self.q_continue))
        }

    def reslot(self, keep: np.ndarray, width: int) -> None:
        """Resize to `width` slots, the state of slots `keep` moved to the first ones (a stream's
        tail shrinks the batch; a burst of arrivals widens it). CPU only (the state is in numpy
        arrays there). The caller sets the inputs again (x_emb is recomputed for the new batch)."""
        kept = [a[keep] for a in self.state_arrays]
        self.resize(width)
        for array, rows in zip(self.state_arrays, kept, strict=True):
            array[: len(rows)] = rows  # widening: the new slots keep their zeros

    def set_inputs(self, tokens: np.ndarray, puzzle_identifiers: np.ndarray) -> None:
        tokens = np.ascontiguousarray(tokens, dtype=np.int32)
        ids = np.ascontiguousarray(puzzle_identifiers, dtype=np.int32)
        for i, rows in enumerate(self.tiles):
            binding = self.init.io_binding()
            binding.bind_cpu_input("tokens", tokens[rows])
            if self.uses_ids:
                binding.bind_cpu_input("puzzle_identifiers", ids[rows])
            binding.bind_ortvalue_output("x_emb", self.x_emb[i])
            self.init.run_with_iobinding(binding)

    def step(self, reset: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        reset = np.ascontiguousarray(reset, dtype=bool)
        for i, rows in enumerate(self.tiles):
            binding = self.session.io_binding()
            binding.bind_ortvalue_input("x_emb", self.x_emb[i])
            binding.bind_ortvalue_input("z_H", self.state[0][i])
            binding.bind_ortvalue_input("z_L", self.state[1][i])
            binding.bind_cpu_input("reset", reset[rows])
            binding.bind_ortvalue_output("z_H_next", self.spare[0][i])
            binding.bind_ortvalue_output("z_L_next", self.spare[1][i])
            binding.bind_ortvalue_output("logits", self.logits[i])
            for name, values in self._host_outputs.items():
                binding.bind_ortvalue_output(name, values[i])
            self.session.run_with_iobinding(binding)
        self.state, self.spare = self.spare, self.state
        if self.device == "cpu":
            self.state_arrays, self.spare_arrays = self.spare_arrays, self.state_arrays
        return self.answer, self.q_halt, self.q_continue

    def read_state(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.device == "cpu":
            z_H, z_L = (a[rows].astype(np.float32) for a in self.state_arrays)
        else:  # the whole tensor through the host: trajectories touch the state once per nudged step
            z_H, z_L = (values[0].numpy()[rows].astype(np.float32) for values in self.state)
        return z_H, z_L

    def write_state(self, rows: np.ndarray, z_H: np.ndarray, z_L: np.ndarray) -> None:
        if self.device == "cpu":
            for array, new in zip(self.state_arrays, (z_H, z_L), strict=True):
                array[rows] = new  # the OrtValues view these arrays
            return
        for values, new in zip(self.state, (z_H, z_L), strict=True):
            host = values[0].numpy()
            host[rows] = new
            values[0].update_inplace(host)

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "onnxruntime": self.ort.__version__,
            "providers": self.session.get_providers(),
            "device": self.device,
        }


PROVIDERS = {"ort-cpu": "CPUExecutionProvider", "ort-cuda": "CUDAExecutionProvider",
             "ort-trt": "TensorrtExecutionProvider"}


def create(name: str, export_dir: Path, meta: ExportMetadata, width: int, threads: int | None,
           precision: str) -> OnnxRuntimeBackend:
    """The registry's factory: ONNX Runtime runs the graph's own precision, or the export's int8 step
    (backends/choice.py checks it)."""
    return OnnxRuntimeBackend(export_dir, meta, name, width, threads, precision)


def unusable(name: str, export_dir: Path | None = None, meta: ExportMetadata | None = None) -> str | None:
    """Why `name` cannot run here, None when it can."""
    try:
        import onnxruntime
    except ImportError:
        return "onnxruntime is not installed"
    if PROVIDERS[name] not in onnxruntime.get_available_providers():
        return f"ONNX Runtime {onnxruntime.__version__} offers no {PROVIDERS[name]}"
    if name != "ort-cpu":
        from trm_edge.gpu_info import cuda_gpu

        if cuda_gpu() is None:
            return "no GPU found by the CUDA driver (ONNX Runtime would run it on the CPU)"
    return None
