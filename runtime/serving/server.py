"""`trm-edge serve`: a real Triton Inference Server (the binary in the nvidia-pytriton wheel) with
the trm-edge solver as a Python-backend model, HTTP + gRPC + Prometheus metrics.

pytriton starts and stops the server binary (and the Python-backend stub for this interpreter);
the model is a repository written here, so Triton's own machinery (dynamic batching, instance
groups, per-request errors, health and metrics) does the serving.
"""

from __future__ import annotations

import errno
import ipaddress
import re
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trm_edge.contract.export_dir import read_metadata
from trm_edge.contract.triton import (
    DEFAULT_MODEL_NAME,
    MODEL_FILE,
    Batching,
    model_config,
    solver_inputs,
    solver_outputs,
)
from trm_edge.errors import TrmEdgeError
from trm_edge.runtime.options import SolverOptions
from trm_edge.runtime.serving.guard import HttpGuard
from trm_edge.runtime.serving.limits import solver_limits

READY_TIMEOUT_S = 120.0
# Error lines Triton logs at every start on a machine without a GPU: not reasons for anything.
LOG_NOISE = ("CudaDriverHelper has not been initialized",)


@dataclass
class ServeOptions:
    host: str = "0.0.0.0"
    # HTTP; gRPC on the next port, metrics on the one after (Triton's own layout: 8000, 8001, 8002).
    port: int = 8000
    model_name: str = DEFAULT_MODEL_NAME
    # Triton's max_batch_size is each instance's slots (the solver's width), its instances, its queue delay.
    batching: Batching = field(default_factory=Batching)
    # How each instance opens its solver (threads: per instance; slots: batching.max_batch's).
    solver: SolverOptions = field(default_factory=SolverOptions)
    log_file: Path | None = None  # Triton's log (default: in the server's work folder)
    # Where Triton's own HTTP listens (loopback) when a guard takes the public port; None: public.
    triton_http_port: int | None = None

    @property
    def http_port(self) -> int:
        return self.port

    @property
    def grpc_port(self) -> int:
        return self.port + 1

    @property
    def metrics_port(self) -> int:
        return self.port + 2

    @property
    def ports(self) -> dict[str, int]:
        """Each endpoint's port, by name."""
        return {"HTTP": self.http_port, "gRPC": self.grpc_port, "metrics": self.metrics_port}


def check_address(host: str, ports: dict[str, int], option: str = "--port") -> None:
    """The host is an address of this machine and every port (`ports`: by endpoint name, all set by
    `option`) is valid, distinct and free: checked before Triton starts, so a typo is a one-line
    error at once, not a timeout two minutes later."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if re.fullmatch(r"[\d.]+|[\da-fA-F:]+", host):
            raise TrmEdgeError(f"--host {host} is not a valid IP address") from None
        try:
            socket.getaddrinfo(host, None)
        except (socket.gaierror, UnicodeError):
            raise TrmEdgeError(f"--host {host}: no such host name here") from None
    first, *rest = ports
    more = f" (the {first} port; {' and '.join(rest)} take the next {len(rest)})" if rest else ""
    for name, port in ports.items():
        if not 1 <= port <= 65535:
            raise TrmEdgeError(f"{option}: the {name} port {port} is not a port (1-65535){more}")
    seen: dict[int, str] = {}
    for name, port in ports.items():
        if port in seen:
            raise TrmEdgeError(f"the {name} and {seen[port]} ports are both {port}: give each endpoint its own port")
        seen[port] = name
    for name, port in ports.items():
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as exc:
                what = "is in use" if exc.errno == errno.EADDRINUSE else f"cannot be bound ({exc.strerror})"
                raise TrmEdgeError(f"the {name} port {port} on {host} {what}: choose another with {option}{more}"
                                   ) from None


def free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_serve_repository(
    export_dir: Path, repo: Path, options: ServeOptions, cancel_dir: Path | None = None
) -> Path:
    """A one-model repository whose Python-backend model runs the solver on `export_dir`."""
    meta = read_metadata(export_dir)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", options.model_name):
        raise TrmEdgeError(f"model name {options.model_name!r}: use letters, digits, '_', '-' and '.'")
    seq_len = meta.model.seq_len
    solver = options.solver
    params = {"export_dir": str(export_dir.resolve()), "backend": solver.backend, "halt": solver.halt,
              "precision": solver.precision}
    if solver.threads:
        params["threads"] = str(solver.threads)
    if solver.max_steps:
        params["max_steps"] = str(solver.max_steps)
    if cancel_dir is not None:
        params["cancel_dir"] = str(cancel_dir)
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
        self._triton: Any = None  # pytriton's Triton, once started

    def start(self) -> None:
        try:
            from pytriton.triton import Triton, TritonConfig
        except ImportError:
            raise TrmEdgeError(
                "serving needs the serve extra: pip install 'trm-edge[cpu,serve]' (nvidia-pytriton ships the Triton "
                "server binary; Linux x86_64 or aarch64 with glibc 2.35+)"
            ) from None
        o = self.options
        behind_guard = o.triton_http_port is not None
        config = TritonConfig(
            model_repository=self.repository,
            http_address="127.0.0.1" if behind_guard else o.host,
            http_port=o.triton_http_port if behind_guard else o.http_port,
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
            self._failed()
            self.stop()
            raise TrmEdgeError(f"Triton did not start: {exc}{hint}") from None
        self._wait_ready()

    def _wait_ready(self) -> None:
        import tritonclient.http as http

        deadline = time.monotonic() + READY_TIMEOUT_S
        client = http.InferenceServerClient(self.triton_http_url)
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
        self._failed()
        self.stop()
        raise TrmEdgeError(f"model(s) {', '.join(self.ready_models)} did not become ready{hint}")

    def _failed(self) -> None:
        """Called when Triton failed to start, before it is stopped (a server keeps the log it names)."""

    def _log_hint(self) -> str:
        try:
            errors = [line for line in self.log_file.read_text(errors="replace").splitlines()
                      if line.startswith("E") and not any(noise in line for noise in LOG_NOISE)]
        except OSError:
            return ""
        return (": " + " | ".join(errors[-3:])) if errors else f" (see {self.log_file})"

    @property
    def http_url(self) -> str:
        return f"{_client_host(self.options.host)}:{self.options.http_port}"

    @property
    def triton_http_url(self) -> str:
        """Triton's own HTTP endpoint (behind the guard: on the loopback)."""
        port = self.options.triton_http_port
        return self.http_url if port is None else f"127.0.0.1:{port}"

    @property
    def grpc_url(self) -> str:
        return f"{_client_host(self.options.host)}:{self.options.grpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{_client_host(self.options.host)}:{self.options.metrics_port}/metrics"

    def wait(self) -> bool:
        """Block while the server is alive: False after Ctrl-C / SIGTERM, True when Triton died."""
        try:
            while self._triton is not None and self._triton.is_alive():
                time.sleep(0.5)
        except KeyboardInterrupt:
            return False
        return True

    def death_reason(self) -> str:
        """What Triton's log says about why it stopped (its last error lines)."""
        hint = self._log_hint()
        return hint.removeprefix(": ") if hint.startswith(": ") else f"tritonserver exited{hint}"

    def stop(self) -> None:
        if self._triton is not None:
            self._triton.stop()
            self._triton = None


class SolverServer(TritonProcess):
    """`trm-edge serve`: writes the one-model repository for `export_dir`, then runs Triton on it."""

    def __init__(self, export_dir: str | Path, options: ServeOptions) -> None:
        options.batching.check()
        check_address(options.host, options.ports)
        self.export_dir = Path(export_dir)
        self.seq_len = read_metadata(self.export_dir).model.seq_len
        options.triton_http_port = free_loopback_port()
        self._work = Path(tempfile.mkdtemp(prefix="trm-edge-serve-"))
        self.cancel_dir = self._work / "cancelled"
        self.cancel_dir.mkdir()
        self.guard: HttpGuard | None = None
        self.keep_log = False  # set when Triton failed: stop() leaves its log in the work folder
        super().__init__(self._work / "models", options, [options.model_name], self._work)

    def __enter__(self) -> SolverServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        write_serve_repository(self.export_dir, self.repository, self.options, self.cancel_dir)
        super().start()
        if self.guard is None:  # the public HTTP port, bounding requests before Triton sees them
            o = self.options
            limits = {o.model_name: solver_limits(self.seq_len, o.batching.max_batch)}
            self.guard = HttpGuard(o.host, o.http_port, f"http://{self.triton_http_url}", limits, self.cancel_dir)
            self.guard.start()

    def _failed(self) -> None:
        self.keep_log = True  # the error names this log: stop() must not remove it

    def restart(self) -> None:
        """A fresh Triton on the same repository and ports (the guard keeps the public port)."""
        super().stop()
        super().start()

    def stop(self) -> None:
        if self.guard is not None:
            self.guard.stop()
            self.guard = None
        super().stop()
        if self.options.log_file is None and not self.keep_log:
            shutil.rmtree(self._work, ignore_errors=True)
        else:  # the log stays where it is (a Triton that failed: its log says why)
            shutil.rmtree(self._work / "models", ignore_errors=True)
            shutil.rmtree(self.cancel_dir, ignore_errors=True)


def _client_host(host: str) -> str:
    return "localhost" if host in ("0.0.0.0", "::", "") else host


def _has_nvidia_driver() -> bool:
    return Path("/proc/driver/nvidia/version").exists()
