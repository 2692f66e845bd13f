"""The solver as a Triton Python-backend model: Triton batches requests, this runs the loop.

Triton's Python backend imports the model file of a model repository and calls `execute` with
the requests its dynamic batcher merged. Each request is checked on its own; a malformed one gets
its own INVALID_ARG error and the others run. All valid puzzles of the batch then share the
solver's slots (continuous batching within the execution) and each request gets its rows back.

The solver's backend comes from the model config's parameters:
- `trm-edge serve`: an ONNX Runtime / TensorRT backend in this process (`export_dir`, `backend`);
- a repository from `trm-edge export --format triton`: `backend: triton-bls`, each step a BLS
  call to the step model Triton serves with its onnxruntime or tensorrt backend.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from trm_edge.runtime.export_dir import read_metadata
from trm_edge.runtime.serving.contract import PUZZLE_IDS, PUZZLE_TEXT, TOKENS
from trm_edge.runtime.serving.requests import read_request, response_tensors
from trm_edge.runtime.solver import Solver, resolve_policy
from trm_edge.tasks import PuzzleError


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        import triton_python_backend_utils as pb_utils  # only exists inside Triton's Python backend

        self.pb = pb_utils
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        max_batch = int(config["max_batch_size"])
        threads = int(params["threads"]) if params.get("threads") else None
        max_steps = int(params["max_steps"]) if params.get("max_steps") else None
        halt = params.get("halt", "auto")
        if params.get("backend") == "triton-bls":
            from trm_edge.runtime.serving.bls_backend import BlsBackend

            export_dir = Path(args["model_repository"]) / args["model_version"]
            meta = read_metadata(export_dir)
            backend: Any = BlsBackend(meta, max_batch, params["init_model"], params["step_model"])
            limit = meta["halting"]["max_steps"] if max_steps is None else max_steps
            policy = resolve_policy(halt, meta)
            if policy.fixed_steps is not None and max_steps is None:
                limit = max(limit, policy.fixed_steps)
            self.solver = Solver(export_dir, meta, backend, policy, limit)
        else:
            self.solver = Solver.load(
                params["export_dir"], params.get("backend", "auto"), max_batch, max_steps, halt, threads
            )

    def execute(self, requests: list[Any]) -> list[Any]:
        pb = self.pb
        responses: list[Any] = [None] * len(requests)
        work: list[tuple[int, list[tuple[np.ndarray, int]]]] = []
        for i, request in enumerate(requests):
            if request.is_cancelled():  # the client went away while it queued
                responses[i] = pb.InferenceResponse(error=pb.TritonError("cancelled", pb.TritonError.CANCELLED))
                continue
            try:
                work.append((i, read_request(self.solver, _inputs(pb, request))))
            except PuzzleError as exc:
                responses[i] = pb.InferenceResponse(error=pb.TritonError(str(exc), pb.TritonError.INVALID_ARG))
        puzzles = [p for _, rows in work for p in rows]
        try:
            results = self.solver.solve_encoded(puzzles) if puzzles else []
        except Exception as exc:  # the backend failed: these requests fail, the server keeps serving
            for i, _ in work:
                responses[i] = pb.InferenceResponse(error=pb.TritonError(f"solver failed: {exc}"))
            return responses
        start = 0
        for i, rows in work:
            mine = results[start : start + len(rows)]
            start += len(rows)
            wanted = set(requests[i].requested_output_names())
            tensors = [pb.Tensor(name, value) for name, value in response_tensors(mine).items() if name in wanted]
            responses[i] = pb.InferenceResponse(output_tensors=tensors)
        return responses

    def finalize(self) -> None:
        self.solver = None  # type: ignore[assignment]


def _inputs(pb: Any, request: Any) -> dict[str, np.ndarray | None]:
    out: dict[str, np.ndarray | None] = {}
    for name in (TOKENS, PUZZLE_IDS, PUZZLE_TEXT):
        tensor = pb.get_input_tensor_by_name(request, name)
        out[name] = None if tensor is None else tensor.as_numpy()
    return out
