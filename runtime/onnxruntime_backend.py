"""ONNX Runtime backends (CPU, CUDA, TensorRT provider) with the state kept on the device.

The state lives in two pairs of OrtValues on the session's device; each step reads one pair and
writes the other (IOBinding), then they swap, so z_H and z_L never travel to the host. The input
embedding x_emb also stays on the device; only tokens go in and answers/halting logits come out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from trm_edge.errors import TrmEdgeError
from trm_edge.runtime.backend import NUMPY_STATE_DTYPES
from trm_edge.runtime.onnxruntime_session import check_graph_io, create_session, import_onnxruntime


class OnnxRuntimeBackend:
    def __init__(self, export_dir: Path, meta: dict[str, Any], name: str, batch: int, threads: int | None) -> None:
        ort = import_onnxruntime()
        self.ort = ort
        self.name = name
        self.batch = batch
        self.meta = meta
        model = meta["model"]
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
        state_dtype = meta["graphs"]["step"]["inputs"][1]["dtype"]
        if state_dtype not in NUMPY_STATE_DTYPES:
            where = "a GPU backend (ort-cuda, tensorrt)" if name == "ort-cpu" else "the tensorrt backend"
            raise TrmEdgeError(f"{state_dtype} state is not supported by {name}: use {where}, or export fp16/fp32")
        if name == "ort-cpu" and not meta["batch"]["dynamic"] and meta["batch"]["size"] != batch:
            raise TrmEdgeError(
                f"this export has a fixed batch of {meta['batch']['size']}; use max_batch="
                f"{meta['batch']['size']} or re-export with a dynamic batch"
            )
        self.init = create_session(export_dir / meta["graphs"]["init"]["file"], providers, threads)
        self.session = create_session(export_dir / meta["graphs"]["step"]["file"], providers, threads)
        for graph, session in (("init", self.init), ("step", self.session)):
            check_graph_io(session, meta, graph)
        self.uses_ids = model["uses_puzzle_identifiers"]

        self.dtype = NUMPY_STATE_DTYPES[state_dtype]
        # Changing the batch width copies the state through numpy: done on the CPU provider only
        # (on a GPU the batch keeps its width; unverified there otherwise).
        self.can_reslot = self.device == "cpu"
        self.resize(batch)

    def resize(self, batch: int) -> None:
        """(Re)allocate the device buffers for `batch` slots; the sessions are kept."""
        ort, model = self.ort, self.meta["model"]
        self.batch = batch
        shape = (batch, model["state_len"], model["hidden_size"])

        def device_value(shape: tuple[int, ...], dtype: Any) -> Any:
            return ort.OrtValue.ortvalue_from_shape_and_type(list(shape), dtype, self.device, 0)

        self.x_emb = device_value(shape, self.dtype)
        self.state = [device_value(shape, self.dtype), device_value(shape, self.dtype)]  # z_H, z_L now
        self.spare = [device_value(shape, self.dtype), device_value(shape, self.dtype)]  # written by the step
        self.logits = device_value((batch, model["seq_len"], model["vocab_size"]), np.float32)
        self.answer = np.zeros((batch, model["seq_len"]), dtype=np.int32)
        self.q_halt = np.zeros(batch, dtype=np.float32)
        self.q_continue = np.zeros(batch, dtype=np.float32)
        self._host_outputs = {
            name: ort.OrtValue.ortvalue_from_numpy(array)
            for name, array in (("answer", self.answer), ("q_halt", self.q_halt), ("q_continue", self.q_continue))
        }
        if self.device == "cpu":
            for value in [self.x_emb, *self.state]:
                value.numpy()[...] = 0  # deterministic contents for slots never filled

    def reslot(self, keep: np.ndarray, width: int) -> None:
        """Resize to `width` slots, the state of slots `keep` moved to the first ones (a stream's
        tail shrinks the batch; a burst of arrivals widens it). Rare next to steps, so a host round
        trip is fine. The caller sets the inputs again (x_emb is recomputed for the new batch)."""
        kept = [v.numpy()[keep] for v in self.state]
        self.resize(width)
        for value, rows in zip(self.state, kept, strict=True):
            if len(rows) < width:  # widening: the new slots start from zeros
                rows = np.concatenate([rows, np.zeros((width - len(rows), *rows.shape[1:]), rows.dtype)])
            value.update_inplace(np.ascontiguousarray(rows))

    def set_inputs(self, tokens: np.ndarray, puzzle_identifiers: np.ndarray) -> None:
        binding = self.init.io_binding()
        binding.bind_cpu_input("tokens", np.ascontiguousarray(tokens, dtype=np.int32))
        if self.uses_ids:
            binding.bind_cpu_input("puzzle_identifiers", np.ascontiguousarray(puzzle_identifiers, dtype=np.int32))
        binding.bind_ortvalue_output("x_emb", self.x_emb)
        self.init.run_with_iobinding(binding)

    def step(self, reset: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        binding = self.session.io_binding()
        binding.bind_ortvalue_input("x_emb", self.x_emb)
        binding.bind_ortvalue_input("z_H", self.state[0])
        binding.bind_ortvalue_input("z_L", self.state[1])
        binding.bind_cpu_input("reset", np.ascontiguousarray(reset, dtype=bool))
        binding.bind_ortvalue_output("z_H_next", self.spare[0])
        binding.bind_ortvalue_output("z_L_next", self.spare[1])
        binding.bind_ortvalue_output("logits", self.logits)
        for name, value in self._host_outputs.items():
            binding.bind_ortvalue_output(name, value)
        self.session.run_with_iobinding(binding)
        self.state, self.spare = self.spare, self.state
        return self.answer, self.q_halt, self.q_continue

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "onnxruntime": self.ort.__version__,
            "providers": self.session.get_providers(),
            "device": self.device,
        }
