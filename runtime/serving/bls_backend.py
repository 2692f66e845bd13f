"""A solver backend inside Triton's Python backend: each step is a BLS call to the step model
that Triton serves itself (onnxruntime_onnx or tensorrt_plan), so the loop's halting and batching
are the runtime's and the graph runs on Triton's backend (and GPU).

The state comes back to the host with every step (BLS outputs are asked for in CPU memory): it
costs a copy per step, and keeps this file free of any GPU array library. `trm-edge serve` with a
GPU backend keeps the state on the device instead.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trm_edge.contract.metadata import NUMPY_STATE_DTYPES, ExportMetadata
from trm_edge.errors import TrmEdgeError

STEP_OUTPUTS = ["z_H_next", "z_L_next", "answer", "q_halt", "q_continue"]  # not logits: nobody reads them here


class BlsBackend:
    name = "triton-bls"
    can_reslot = True  # the state is on the host between steps, so changing the batch width is a copy

    def __init__(self, meta: ExportMetadata, width: int, init_model: str, step_model: str) -> None:
        import triton_python_backend_utils as pb_utils

        self.pb = pb_utils
        self.meta = meta
        self.init_model, self.step_model = init_model, step_model
        state_dtype = meta.state_dtype
        if state_dtype not in NUMPY_STATE_DTYPES:
            raise TrmEdgeError(f"{state_dtype} state cannot pass through a BLS loop: export fp32 or fp16")
        self.dtype = NUMPY_STATE_DTYPES[state_dtype]
        self.uses_ids = meta.model.uses_puzzle_identifiers
        self.x_emb: Any = None
        self.precision = meta.precision  # the step model runs the graph's own dtypes
        self.resize(width)

    def resize(self, width: int) -> None:
        model = self.meta.model
        self.width = width
        shape = (width, model.state_len, model.hidden_size)
        self.state = [np.zeros(shape, self.dtype), np.zeros(shape, self.dtype)]

    def reslot(self, keep: np.ndarray, width: int) -> None:
        kept = [s[keep] for s in self.state]
        self.resize(width)
        for state, rows in zip(self.state, kept, strict=True):
            state[: len(rows)] = rows

    def _call(self, model: str, inputs: dict[str, np.ndarray], outputs: list[str]) -> dict[str, np.ndarray]:
        pb = self.pb
        request = pb.InferenceRequest(
            model_name=model,
            inputs=[pb.Tensor(name, value) for name, value in inputs.items()],
            requested_output_names=outputs,
            preferred_memory=pb.PreferredMemory(pb.TRITONSERVER_MEMORY_CPU, 0),
        )
        response = request.exec()
        if response.has_error():
            raise TrmEdgeError(f"{model}: {response.error().message()}")
        return {name: pb.get_output_tensor_by_name(response, name).as_numpy() for name in outputs}

    def set_inputs(self, tokens: np.ndarray, puzzle_identifiers: np.ndarray) -> None:
        inputs = {"tokens": np.ascontiguousarray(tokens, dtype=np.int32)}
        if self.uses_ids:
            inputs["puzzle_identifiers"] = np.ascontiguousarray(puzzle_identifiers, dtype=np.int32).reshape(-1, 1)
        self.x_emb = self._call(self.init_model, inputs, ["x_emb"])["x_emb"]

    def step(self, reset: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        out = self._call(
            self.step_model,
            {
                "x_emb": self.x_emb,
                "z_H": self.state[0],
                "z_L": self.state[1],
                "reset": np.ascontiguousarray(reset, dtype=bool).reshape(-1, 1),
            },
            STEP_OUTPUTS,
        )
        self.state = [out["z_H_next"], out["z_L_next"]]
        return out["answer"].astype(np.int32), out["q_halt"].reshape(-1), out["q_continue"].reshape(-1)

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "init_model": self.init_model, "step_model": self.step_model}
