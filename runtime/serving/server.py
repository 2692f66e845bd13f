"""`trm-edge serve`: a real Triton Inference Server (the binary in the nvidia-pytriton wheel) with
the trm-edge solver as a Python-backend model, HTTP + gRPC + Prometheus metrics.

pytriton starts and stops the server binary (and the Python-backend stub for this interpreter);
the model is a repository written here, so Triton's own machinery (dynamic batching, instance
groups, per-request errors, health and metrics) does the serving.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from trm_edge.errors import TrmEdgeError
from trm_edge.runtime.export_dir import read_metadata
from trm_edge.runtime.serving.contract import (
    DEFAULT_MODEL_NAME,
    Batching,
    model_config,
    solver_inputs,
    solver_outputs,
)

# The model file Triton's Python backend imports: the class lives in the installed package.
MODEL_FILE = (
    '"""trm-edge solver (see trm_edge.runtime.serving.python_model)."""\n\n'
    "from trm_edge.runtime.serving.python_model import TritonPythonModel  # noqa: F401\n"
)
READY_TIMEOUT_S = 120.0


@dataclass
class ServeOptions:
    host: str = "0.0.0.0"
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = 8002
    model_name: str = DEFAULT_MODEL_NAME
    batching: Batching = field(default_factory=Batching)
    backend: str = "auto"
    halt: str = "auto"
    threads: int | None = None  # per instance; default: ONNX Runtime's choice
    max_steps: int | None = None
    log_file: Path | None = None  # Triton's log (default: in the server's work folder)


def write_serve_repository(export_dir: Path, repo: Path, options: ServeOptions) -> Path:
    """A one-model repository whose Python-backend model runs the solver on `export_dir`."""
    meta = read_metadata(export_dir)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", options.model_name):
        raise TrmEdgeError(f"model name {options.model_name!r}: use letters, digits, '_', '-' and '.'")
    seq_len = meta["model"]["seq_len"]
    params = {"export_dir": str(export_dir.resolve()), "backend": options.backend, "halt": options.halt}
    if options.threads:
        params["threads"] = str(options.threads)
    if options.max_steps:
        params["max_steps"] = str(options.max_steps)
    model_dir = repo / options.model_name
    (model_dir / "1").mkdir(parents=True, exist_ok=True)
    (model_dir / "1" / "model.py").write_text(MODEL_FILE)
    (model_dir / "config.pbtxt").write_text(
        model_config(
            options.model_name, "python", None, solver_inputs(seq_len), solver_outputs(seq_len),
            options.batching, params,
        )
    )
    return model_dir


class TritonProcess:
    """The Triton binary from the nvidia-pytriton wheel serving a model repository; `start()`
    returns once `ready_models` are ready, `wait()` serves until Ctrl-C / SIGTERM or Triton dies."""

    def __init__(self, repository: Path, options: ServeOptions, ready_models: list[str], work: Path) -> None:
        self.repository = repository
        self.options = options
        self.ready_models = ready_models
        self.log_file = options.log_file or work / "triton.log"
        self._triton = None

    def start(self) -> None:
        try:
            from pytriton.triton import Triton, TritonConfig
        except ImportError:
            raise TrmEdgeError(
                "serving needs the serve extra: pip install 'trm-edge[cpu,serve]' (nvidia-pytriton ships the Triton "
                "server binary; Linux x86_64 or aarch64 with glibc 2.35+)"
            ) from None
        o = self.options
        config = TritonConfig(
            model_repository=self.repository,
            http_address=o.host,
            http_port=o.http_port,
            grpc_address=o.host,
            grpc_port=o.grpc_port,
            metrics_address=o.host,
            metrics_port=o.metrics_port,
            log_file=self.log_file,
            exit_timeout_secs=5,
            strict_readiness=True,
            # Without an NVIDIA driver, GPU metrics only print an NVML error at start.
            allow_gpu_metrics=_has_nvidia_driver(),
        )
        self._triton = Triton(config=config)
        try:
            self._triton.run()
        except Exception as exc:  # port in use, model failed to load, ...
            hint = self._log_hint()
            self.stop()
            raise TrmEdgeError(f"Triton did not start: {exc}{hint}") from None
        self._wait_ready()

    def _wait_ready(self) -> None:
        import tritonclient.http as http

        deadline = time.monotonic() + READY_TIMEOUT_S
        client = http.InferenceServerClient(self.http_url)
        try:
            while time.monotonic() < deadline and self._triton is not None and self._triton.is_alive():
                try:
                    if all(client.is_model_ready(name) for name in self.ready_models):
                        return
                except Exception:  # not listening yet
                    pass
                time.sleep(0.2)
        finally:
            client.close()
        hint = self._log_hint()
        self.stop()
        raise TrmEdgeError(f"model(s) {', '.join(self.ready_models)} did not become ready{hint}")

    def _log_hint(self) -> str:
        try:
            errors = [line for line in self.log_file.read_text().splitlines() if line.startswith("E")]
        except OSError:
            return ""
        return (": " + " | ".join(errors[-3:])) if errors else f" (see {self.log_file})"

    @property
    def http_url(self) -> str:
        return f"{_client_host(self.options.host)}:{self.options.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"{_client_host(self.options.host)}:{self.options.grpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{_client_host(self.options.host)}:{self.options.metrics_port}/metrics"

    def wait(self) -> None:
        """Block while the server is alive (returns on Ctrl-C or when Triton exits)."""
        try:
            while self._triton is not None and self._triton.is_alive():
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass

    def stop(self) -> None:
        if self._triton is not None:
            self._triton.stop()
            self._triton = None


class SolverServer(TritonProcess):
    """`trm-edge serve`: writes the one-model repository for `export_dir`, then runs Triton on it."""

    def __init__(self, export_dir: str | Path, options: ServeOptions) -> None:
        options.batching.check()
        self.export_dir = Path(export_dir)
        self._work = Path(tempfile.mkdtemp(prefix="trm-edge-serve-"))
        super().__init__(self._work / "models", options, [options.model_name], self._work)

    def __enter__(self) -> SolverServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        write_serve_repository(self.export_dir, self.repository, self.options)
        super().start()

    def stop(self) -> None:
        super().stop()
        if self.options.log_file is None:
            shutil.rmtree(self._work, ignore_errors=True)
        else:
            shutil.rmtree(self._work / "models", ignore_errors=True)


def _client_host(host: str) -> str:
    return "localhost" if host in ("0.0.0.0", "::", "") else host


def _has_nvidia_driver() -> bool:
    return Path("/proc/driver/nvidia/version").exists()
