"""Hostile HTTP requests against the exported Triton repository: sent to a plain Triton loading it,
to the same Triton behind `trm-edge guard`, and to `trm-edge serve` on the same export. For each
request: the HTTP status and whether the server stayed up (a crashed Triton is started again before
the next request).

    python benchmarks/triton_hostile.py [--json triton_hostile.json]

Plain Triton is the binary in the nvidia-pytriton wheel (Triton 2.51), which has only the Python
backend: the repository's init/step graphs run through tests/triton_models/onnx_in_python.py there;
the solver model, its configs and Triton's HTTP front are the real ones. The model is the official-
trained Sudoku fixture (tests/fixtures/trained).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import machine
from rich.console import Console
from rich.table import Table

from trm_edge.runtime.serving.server import ServeOptions, TritonProcess

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the test tools
from conftest import TRAINED, cpu_triton_copy, free_ports, start_serve
from hostile_requests import hostile_requests, post
from load_clients import server_ready

# Each model of the repository, the input a request names, its datatype and row shape.
INPUTS = [("trm_solver", "tokens", "INT32", [81]), ("trm_solver", "puzzle", "BYTES", [1]),
          ("trm_solver_init", "tokens", "INT32", [81]), ("trm_solver_step", "z_H", "FP32", [81, 128])]


def run(args: list[str]) -> None:
    subprocess.run([sys.executable, "-m", "trm_edge", *args], check=True, capture_output=True)


class PlainTriton:
    """A plain Triton on the repository, started again whenever a request killed it."""

    def __init__(self, repo: Path, work: Path) -> None:
        self.repo, self.work, self.server = repo, work, None
        self.restarts = -1

    def url(self) -> str:
        if self.server is None or not self.server._triton or not self.server._triton.is_alive():
            if self.server is not None:
                self.server.stop()
            http, grpc, metrics = free_ports(3)
            options = ServeOptions(host="127.0.0.1", http_port=http, grpc_port=grpc, metrics_port=metrics,
                                   log_file=self.work / "triton.log")
            self.server = TritonProcess(self.repo, options, ["trm_solver"], self.work)
            self.server.start()
            self.restarts += 1
        return self.server.http_url

    def up(self) -> bool:
        time.sleep(0.5)  # an abort takes a moment to show
        return bool(self.server and self.server._triton and self.server._triton.is_alive()) and server_ready(
            self.server.http_url)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=Path("triton_hostile.json"))
    args = parser.parse_args()
    console = Console()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        fixture = TRAINED / "official_sudoku_mlp128"
        with console.status("converting and exporting the trained fixture"):
            run(["convert", f"{fixture}.pt", "--config", f"{fixture}.all_config.yaml", "--dataset",
                 f"{fixture}.dataset.json", "-o", str(work / "sudoku.safetensors")])
            run(["export", str(work / "sudoku.safetensors"), "-o", str(work / "export")])
            run(["export", str(work / "export"), "--format", "triton", "-o", str(work / "repo"), "--max-batch", "16"])
        plain = PlainTriton(cpu_triton_copy(work / "repo", work / "repo-cpu"), work)
        guard_port = free_ports(1)[0]
        with console.status("starting plain Triton, trm-edge guard and trm-edge serve"):
            plain.url()
            guard = subprocess.Popen([sys.executable, "-m", "trm_edge", "guard", str(work / "repo"), "--host",
                                      "127.0.0.1", "--port", str(guard_port), "--upstream", plain.url()],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            serve, (serve_http, _, _) = start_serve(work / "export", work / "serve.log", "--max-batch", "16")
        guard_url = f"127.0.0.1:{guard_port}"
        try:
            for model, name, datatype, row in INPUTS:
                for request in hostile_requests(name, datatype, row):
                    status, _ = post(plain.url(), model, request)
                    plain_up = plain.up()
                    if not plain_up:  # the guard's upstream died with it: point a new guard at the new Triton
                        guard.send_signal(signal.SIGTERM)
                        guard.wait()
                        guard = subprocess.Popen(
                            [sys.executable, "-m", "trm_edge", "guard", str(work / "repo"), "--host", "127.0.0.1",
                             "--port", str(guard_port), "--upstream", plain.url()],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                        while not server_ready(guard_url):
                            time.sleep(0.2)
                    guarded, _ = post(guard_url, model, request)
                    guarded_up = plain.up()
                    served = post(f"127.0.0.1:{serve_http}", model, request)[0]  # 404 for models it lacks
                    serve_up = serve.poll() is None and server_ready(f"127.0.0.1:{serve_http}")
                    rows.append({"model": model, "input": name, "request": request.what, "plain_status": status,
                                 "plain_up": plain_up, "guard_status": guarded, "guard_up": guarded_up,
                                 "serve_status": served, "serve_up": serve_up})
                    console.print(f"{model:16} {request.what:44} plain {status} up={plain_up}  guard {guarded} "
                                  f"up={guarded_up}  serve {served} up={serve_up}", highlight=False)
        finally:
            guard.send_signal(signal.SIGTERM)
            serve.send_signal(signal.SIGTERM)
            serve.wait(60)
            plain.stop()
    table = Table(title="hostile HTTP requests (status; x = the server died)")
    for column in ("model", "request", "plain Triton", "trm-edge guard", "trm-edge serve"):
        table.add_column(column)

    def cell(status: int | None, up: bool) -> str:
        return f"{status if status is not None else 'no reply'}" + ("" if up else " x")

    for r in rows:
        table.add_row(r["model"], r["request"], cell(r["plain_status"], r["plain_up"]),
                      cell(r["guard_status"], r["guard_up"]),
                      cell(r["serve_status"], r["serve_up"]))
    console.print(table)
    crashed = sum(not r["plain_up"] for r in rows)
    console.print(f"plain Triton died on {crashed} of {len(rows)} requests; behind trm-edge guard on "
                  f"{sum(not r['guard_up'] for r in rows)}; trm-edge serve on {sum(not r['serve_up'] for r in rows)}")
    args.json.write_text(json.dumps({"rows": rows, "cpu": machine(),
                                     "cores": os.cpu_count()}, indent=2))
    console.print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
