"""A bounded load run against a served solver: N clients for T seconds over HTTP or gRPC, every
answer checked against the expected one for the exact puzzle sent (so a lost, duplicated or
crossed response shows), optionally with malformed requests and dropped connections mixed in.

Used by `benchmarks/serve_load.py` (figures, and its soak) and the serve tests (correctness under
load), which also start `trm-edge serve` as a user does through `start_serve`.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trm_edge.contract.triton import ANSWER, STEPS, TOKENS
from trm_edge.errors import TrmEdgeError


@dataclass
class LoadReport:
    protocol: str
    clients: int
    seconds: float
    rows_per_request: int
    requests_ok: int = 0
    puzzles_ok: int = 0
    wrong_answers: int = 0  # an answer that is not the one expected for the puzzle sent
    errors: int = 0  # a well-formed request that failed
    malformed_sent: int = 0
    malformed_rejected: int = 0  # malformed requests answered with a Triton error, as they must be
    disconnects: int = 0  # requests whose client hung up before the answer
    latencies_s: list[float] = field(default_factory=list, repr=False)
    error_messages: list[str] = field(default_factory=list, repr=False)

    @property
    def throughput(self) -> float:
        return self.puzzles_ok / self.seconds if self.seconds else 0.0

    def percentile_ms(self, q: float) -> float:
        return float(np.percentile(self.latencies_s, q) * 1000) if self.latencies_s else float("nan")

    def summary(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k not in ("latencies_s", "error_messages")}
        out.update(
            puzzles_per_s=round(self.throughput, 1),
            p50_ms=round(self.percentile_ms(50), 2),
            p99_ms=round(self.percentile_ms(99), 2),
            first_errors=self.error_messages[:3],
        )
        return out


def _client(protocol: str, url: str) -> tuple[Any, Any]:
    if protocol == "http":
        import tritonclient.http as module
    elif protocol == "grpc":
        import tritonclient.grpc as module
    else:
        raise TrmEdgeError(f"protocol must be http or grpc, got {protocol!r}")
    return module, module.InferenceServerClient(url)


def _tokens_input(module: Any, rows: np.ndarray) -> Any:
    tensor = module.InferInput(TOKENS, list(rows.shape), "INT32")
    tensor.set_data_from_numpy(np.ascontiguousarray(rows, dtype=np.int32))
    return tensor


def run_load(
    url: str,
    model: str,
    puzzles: np.ndarray,
    expected: np.ndarray,
    protocol: str = "http",
    clients: int = 8,
    seconds: float = 10.0,
    rows_per_request: int = 1,
    malformed_every: int = 0,
    disconnect_every_s: float = 0.0,
    http_url: str | None = None,
    vocab_size: int = 11,
) -> LoadReport:
    """`expected[i]`: the answer the solver gives alone for `puzzles[i]`. malformed_every=k makes
    the first request of each client and every k-th after it malformed (so that even a slow run
    sends some) (a token outside the vocabulary); with
    disconnect_every_s a side thread sends a real HTTP request and hangs up before the answer."""
    report = LoadReport(protocol, clients, seconds, rows_per_request)
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds
    stop = threading.Event()

    def client_loop(c: int) -> None:
        module, client = _client(protocol, url)
        rng = np.random.default_rng(c)
        n = 0
        try:
            while time.perf_counter() < deadline:
                n += 1
                idx = rng.integers(0, len(puzzles), rows_per_request)
                rows = puzzles[idx].copy()
                malformed = malformed_every > 0 and n % malformed_every == 1 % malformed_every
                if malformed:
                    rows[0, 0] = vocab_size + 7
                outputs = [module.InferRequestedOutput(ANSWER), module.InferRequestedOutput(STEPS)]
                t0 = time.perf_counter()
                try:
                    result = client.infer(model, [_tokens_input(module, rows)], outputs=outputs,
                                          request_id=f"{c}-{n}")
                except Exception as exc:  # a Triton error (InferenceServerException) or a transport failure
                    with lock:
                        report.malformed_sent += int(malformed)
                        if malformed and "must lie in" in str(exc):  # rejected with the reason, as it must be
                            report.malformed_rejected += 1
                        else:
                            report.errors += 1
                            report.error_messages.append(f"{type(exc).__name__}: {exc}")
                    continue
                elapsed = time.perf_counter() - t0
                answers = result.as_numpy(ANSWER)
                wrong = int((answers != expected[idx]).any(axis=1).sum())
                with lock:
                    if malformed:  # a malformed request must never succeed
                        report.malformed_sent += 1
                        report.errors += 1
                        report.error_messages.append("a malformed request was answered")
                        continue
                    report.requests_ok += 1
                    report.puzzles_ok += rows_per_request - wrong
                    report.wrong_answers += wrong
                    report.latencies_s.append(elapsed)
        finally:
            client.close()

    def disconnect_loop() -> None:
        host, port = (http_url or url).rsplit(":", 1)
        body = json.dumps({"inputs": [{"name": TOKENS, "shape": [1, puzzles.shape[1]], "datatype": "INT32",
                                       "data": puzzles[0].tolist()}]}).encode()
        while not stop.wait(disconnect_every_s):
            hang_up(host, int(port), model, body)
            with lock:
                report.disconnects += 1

    threads = [threading.Thread(target=client_loop, args=(c,), daemon=True) for c in range(clients)]
    side = threading.Thread(target=disconnect_loop, daemon=True) if disconnect_every_s > 0 else None
    started = time.perf_counter()
    for t in threads:
        t.start()
    if side is not None:
        side.start()
    for t in threads:
        t.join()
    stop.set()
    if side is not None:
        side.join()
    report.seconds = time.perf_counter() - started
    return report


def hang_up(host: str, port: int, model: str, body: bytes) -> None:
    """Send a complete HTTP inference request and close the connection without reading the answer."""
    request = (
        f"POST /v2/models/{model}/infer HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_RDWR)


def server_ready(http_url: str) -> bool:
    """Whether the server at host:port answers its KServe readiness check."""
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://{http_url}/v2/health/ready", timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def free_ports(n: int) -> list[int]:
    """n distinct free TCP ports on the loopback (for servers a test or benchmark starts)."""
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def free_port_base(n: int = 3) -> int:
    """A port P with P .. P+n-1 all free on the loopback (`trm-edge serve --port P`: HTTP, gRPC, metrics)."""
    for _ in range(200):
        base = free_ports(1)[0]
        if base + n - 1 > 65535:
            continue
        socks = [socket.socket() for _ in range(n - 1)]
        try:
            for offset, s in enumerate(socks, 1):
                s.bind(("127.0.0.1", base + offset))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise TrmEdgeError(f"found no {n} free ports in a row on the loopback")


def start_serve(export_dir: Path, log: Path, *args: str) -> tuple[subprocess.Popen[str], list[int]]:
    """`trm-edge serve EXPORT` on loopback with free ports, as a user starts it; returns once its
    model is ready (the process and its HTTP, gRPC and metrics ports)."""
    import tritonclient.http as httpclient

    base = free_port_base(3)
    ports = [base, base + 1, base + 2]
    http = base
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "trm_edge", "serve", str(export_dir), "--host", "127.0.0.1", "--port", str(base),
             *args],
            stdout=out, stderr=subprocess.STDOUT, text=True,
        )
    client = httpclient.InferenceServerClient(f"127.0.0.1:{http}")
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if client.is_server_ready() and client.is_model_ready("trm_solver"):
                    return process, ports
            except Exception:
                pass
            time.sleep(0.3)
    finally:
        client.close()
    process.kill()
    raise TrmEdgeError(f"trm-edge serve did not become ready:\n{log.read_text()}")
