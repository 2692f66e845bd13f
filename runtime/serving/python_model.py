"""The solver as a Triton Python-backend model: Triton batches requests, this runs the loop.

Triton's Python backend imports the model file of a model repository and calls `execute` with
the requests its dynamic batcher merged. Each request is checked on its own; a malformed one gets
its own INVALID_ARG error and the others run. Valid puzzles go to one SolverFeed per instance:
its loop runs across executions, so new requests take slots as soon as others' puzzles halt.

The solver's backend comes from the model config's parameters:
- `trm-edge serve`: an ONNX Runtime / TensorRT backend in this process (`export_dir`, `backend`);
- a repository from `trm-edge export --format triton`: `backend: triton-bls`, each step a BLS
  call to the step model Triton serves with its onnxruntime or tensorrt backend.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np

from trm_edge.contract.export_dir import read_metadata
from trm_edge.contract.triton import PUZZLE_IDS, PUZZLE_TEXT, TOKENS
from trm_edge.runtime.export_task import halting_and_limit
from trm_edge.runtime.feed import FeedClosedError, SolverFeed
from trm_edge.runtime.options import SolverOptions
from trm_edge.runtime.serving.requests import read_request, response_tensors
from trm_edge.runtime.solver import Result, Solver
from trm_edge.tasks import PuzzleError


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        import triton_python_backend_utils as pb_utils  # only exists inside Triton's Python backend

        self.pb = pb_utils
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        slots = int(config["max_batch_size"])  # each instance's solver is as wide as Triton's largest batch
        threads = int(params["threads"]) if params.get("threads") else None
        max_steps = int(params["max_steps"]) if params.get("max_steps") else None
        halt = params.get("halt", "auto")
        if params.get("backend") == "triton-bls":
            from trm_edge.runtime.serving.bls_backend import BlsBackend

            export_dir = Path(args["model_repository"]) / args["model_version"]
            meta = read_metadata(export_dir, graphs_here=False)  # the graphs are the step/init models
            policy, limit = halting_and_limit(meta, halt, max_steps)
            backend = BlsBackend(meta, slots, params["init_model"], params["step_model"])
            self.solver = Solver(export_dir, meta, backend, policy, limit)
        else:
            options = SolverOptions(backend=params.get("backend", "auto"), precision=params.get("precision", "auto"),
                                    halt=halt, max_steps=max_steps, threads=threads, slots=slots)
            self.solver = Solver.load(params["export_dir"], options)
        # Markers of HTTP requests whose clients hung up (written by trm-edge serve's HTTP guard).
        self.cancel_dir = Path(params["cancel_dir"]) if params.get("cancel_dir") else None
        self.feed = SolverFeed(self.solver).start()

    def execute(self, requests: list[Any]) -> None:
        """Hand every well-formed request's puzzles to the running loop and return at once: each
        request is answered (through its response sender) when its last puzzle halts, and the next
        batch Triton forms joins the loop at the next step (continuous batching across requests)."""
        pb = self.pb
        for request in requests:
            sender = request.get_response_sender()
            try:
                self._accept(request, sender)
            except Exception as exc:  # one request's failure is that request's error, never the batch's
                _send_error(pb, sender, f"internal error handling this request ({type(exc).__name__})",
                            pb.TritonError.INTERNAL)

    def _accept(self, request: Any, sender: Any) -> None:
        pb = self.pb
        if request.is_cancelled():  # the client went away while it queued
            _send_error(pb, sender, "cancelled", pb.TritonError.CANCELLED)
            return
        try:
            rows = read_request(self.solver, _inputs(pb, request))
        except PuzzleError as exc:
            _send_error(pb, sender, str(exc), pb.TritonError.INVALID_ARG)
            return
        # Back-pressure: while a full batch already waits for slots, Triton keeps the rest queued.
        self.feed.wait_for_room(self.solver.slots)
        try:
            cancelled = _cancel_check(request, self.cancel_dir)
            futures = [self.feed.submit_encoded(p, cancelled=cancelled) for p in rows]
        except FeedClosedError:  # the backend failed earlier: say so rather than hang (no server details)
            _send_error(pb, sender, "this model instance's solver failed; it cannot serve", pb.TritonError.UNAVAILABLE)
            return
        _Reply(pb, sender, set(request.requested_output_names()), len(rows)).attach(futures)

    def finalize(self) -> None:
        self.feed.close()


class _Reply:
    """Collects one request's results (futures complete in the solver's thread) and sends its one
    response when the last arrives."""

    def __init__(self, pb: Any, sender: Any, wanted: set[str], rows: int) -> None:
        self.pb, self.sender, self.wanted = pb, sender, wanted
        self.results: list[Any] = [None] * rows
        self.left = rows
        self.lock = threading.Lock()

    def attach(self, futures: list[Future[Result]]) -> None:
        for row, future in enumerate(futures):
            future.add_done_callback(functools.partial(self._done_at, row))

    def _done_at(self, row: int, future: Future[Result]) -> None:
        with self.lock:
            self.results[row] = future
            self.left -= 1
            if self.left:
                return
        pb = self.pb
        if any(f.cancelled() for f in self.results):  # the client went away mid-flight: its slots were freed
            _send_error(pb, self.sender, "cancelled", pb.TritonError.CANCELLED)
            return
        failed = next((f.exception() for f in self.results if f.exception() is not None), None)
        if failed is not None:  # the backend failed: this request fails, the server keeps serving
            # The type only: a message from deep inside may carry server paths.
            _send_error(pb, self.sender, f"solver failed ({type(failed).__name__})", pb.TritonError.INTERNAL)
            return
        tensors = response_tensors([f.result() for f in self.results])
        response = pb.InferenceResponse(
            output_tensors=[pb.Tensor(name, value) for name, value in tensors.items() if name in self.wanted]
        )
        self.sender.send(response, flags=pb.TRITONSERVER_RESPONSE_COMPLETE_FINAL)


def _cancel_check(request: Any, cancel_dir: Path | None) -> Callable[[], bool]:
    """Whether the request's client gave up: Triton's own cancellation (gRPC), or the HTTP guard's
    marker for a client that hung up."""
    marker = None
    if cancel_dir is not None:
        from trm_edge.runtime.serving.guard import cancel_marker

        marker = cancel_marker(cancel_dir, request.request_id() or "")

    def cancelled() -> bool:
        return bool(request.is_cancelled()) or (marker is not None and marker.exists())

    return cancelled


def _send_error(pb: Any, sender: Any, message: str, code: Any) -> None:
    response = pb.InferenceResponse(error=pb.TritonError(message, code))
    sender.send(response, flags=pb.TRITONSERVER_RESPONSE_COMPLETE_FINAL)


def _inputs(pb: Any, request: Any) -> dict[str, np.ndarray | None]:
    out: dict[str, np.ndarray | None] = {}
    for name in (TOKENS, PUZZLE_IDS, PUZZLE_TEXT):
        tensor = pb.get_input_tensor_by_name(request, name)
        out[name] = None if tensor is None else tensor.as_numpy()
    return out
