"""`trm-edge serve`: the export behind a Triton Inference Server; `trm-edge guard`: the HTTP guard alone,
in front of a Triton serving an exported repository (no torch)."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import typer

from trm_edge.app.cli_common import BACKEND, HALT, MAX_STEPS, PRECISION, THREADS, console
from trm_edge.errors import PassedOverWarning, TrmEdgeError
from trm_edge.output_paths import check_output_file


def serve_command(
    export_dir: Path = typer.Argument(..., help="Export directory (from trm-edge export)."),
    host: str = typer.Option("0.0.0.0", "--host", help="Address the HTTP, gRPC and metrics endpoints bind."),
    http_port: int = typer.Option(8000, "--http-port", help="HTTP/REST (KServe v2) port."),
    grpc_port: int = typer.Option(8001, "--grpc-port", help="gRPC port."),
    metrics_port: int = typer.Option(8002, "--metrics-port", help="Prometheus metrics port (/metrics)."),
    model_name: str = typer.Option("trm_solver", "--model-name", help="Name clients call the model by."),
    instances: int = typer.Option(1, "--instances", help="Model instances (processes), each with its own session."),
    max_batch: int | None = typer.Option(
        None, "--max-batch", help="Puzzles per model execution (Triton max_batch_size) [64; an export --batch N: N]."
    ),
    queue_delay_us: int = typer.Option(
        1000, "--queue-delay-us", help="How long Triton may hold a request to batch it with others (microseconds)."
    ),
    backend: str = BACKEND,
    precision: str = PRECISION,
    halt: str = HALT,
    threads: int | None = THREADS,
    max_steps: int | None = MAX_STEPS,
    log_file: Path | None = typer.Option(None, "--log-file", help="Keep Triton's log here [temporary]."),
    restart: bool = typer.Option(
        False, "--restart", help="Start Triton again if it dies (for hosts without a supervisor); else serve exits "
        "with an error."
    ),
) -> None:
    """Serve an export through NVIDIA Triton Inference Server with dynamic batching.

    Clients send `tokens` (INT32 [n, seq_len], optional `puzzle_identifiers` INT32 [n, 1]) or
    `puzzle` (BYTES [n, 1], Sudoku/Maze text) and get `answer`, `answer_text`, `steps`,
    `halt_confidence` and `verified`. Health: /v2/health/ready; metrics: :METRICS_PORT/metrics.
    HTTP requests pass a guard that bounds their declared shapes before Triton allocates them. If
    Triton dies, serve exits non-zero with the reason (or, with --restart, starts it again).
    """
    from trm_edge.contract.export_dir import read_metadata
    from trm_edge.contract.triton import Batching
    from trm_edge.runtime.serving.server import ServeOptions, SolverServer
    from trm_edge.runtime.solver import slots_for

    if log_file is not None:
        check_output_file(log_file, None, export_dir)  # Triton opens it: refused here, not in its start-up
    max_batch = slots_for(read_metadata(export_dir), max_batch, "--max-batch")  # a fixed-batch export: its batch
    batching = Batching(max_batch=max_batch, queue_delay_us=queue_delay_us, instances=instances)
    batching.check()
    if threads is None and instances > 1:  # instances share the cores rather than each taking all of them
        threads = max(1, (os.cpu_count() or 1) // instances)
    # Fail here, with trm-edge's message, rather than in a model load inside Triton's log.
    chosen_backend, chosen_precision = probe_choice(export_dir, backend, precision, max_batch, max_steps, halt,
                                                    threads)
    options = ServeOptions(
        host=host, http_port=http_port, grpc_port=grpc_port, metrics_port=metrics_port, model_name=model_name,
        batching=batching, backend=chosen_backend, precision=chosen_precision, halt=halt, threads=threads,
        max_steps=max_steps,
        log_file=log_file,
    )
    # SIGTERM (docker stop, Kubernetes) stops as Ctrl-C does.
    signal.signal(signal.SIGTERM, _interrupt)
    server = SolverServer(export_dir, options)  # checks host and ports first
    try:
        with console.status("starting Triton Inference Server"):
            server.start()
        console.print(
            f"[green]serving[/] {export_dir} as model [bold]{model_name}[/] on {chosen_backend} {chosen_precision} "
            f"({instances} instance(s), max batch {max_batch}, queue delay {queue_delay_us} us)\n"
            f"  HTTP    {server.http_url}   /v2/models/{model_name}/infer\n"
            f"  gRPC    {server.grpc_url}\n"
            f"  health  http://{server.http_url}/v2/health/ready\n"
            f"  metrics {server.metrics_url}\n"
            f"  log     {server.log_file}\n"
            "Ctrl-C stops.",
            highlight=False,
        )
        while server.wait():  # Triton died
            reason = server.death_reason()
            if not restart:
                raise TrmEdgeError(f"Triton Inference Server stopped unexpectedly: {reason}")
            console.print(f"[yellow]Triton stopped ({reason}); starting it again[/]", highlight=False)
            with console.status("restarting Triton Inference Server"):
                server.restart()
            console.print("[green]serving again[/]")
    finally:
        server.stop()
        console.print("stopped")


def probe_choice(export_dir: Path, backend: str, precision: str, max_batch: int, max_steps: int | None, halt: str,
                 threads: int | None) -> tuple[str, str]:
    """What the instances run: the export opened as they will open it (auto measures at their width
    and threads), in a child process, so that trm-edge's message comes here rather than in Triton's
    log, and so that nothing the choice loaded stays in the serving process (a process holding
    OpenVINO's compiled-model cache crashed when Triton stopped)."""
    import warnings
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        chosen, notes = pool.submit(_open_for_serving, str(export_dir), backend, precision, max_batch, max_steps,
                                    halt, threads).result()
    for note in notes:
        warnings.warn(f"{backend} {note}", PassedOverWarning, stacklevel=2)
    return chosen


def _open_for_serving(export_dir: str, backend: str, precision: str, max_batch: int, max_steps: int | None,
                      halt: str, threads: int | None) -> tuple[tuple[str, str], list[str]]:
    import warnings

    from trm_edge.runtime.solver import Solver

    with warnings.catch_warnings():  # the notes travel back and are said once, by the serving process
        warnings.simplefilter("ignore", PassedOverWarning)
        probe = Solver.load(export_dir, backend, slots=max_batch, max_steps=max_steps, halt=halt,
                            threads=threads, precision=precision)
    return (probe.backend_name, probe.precision), probe.choice_notes


def guard_command(
    repository: Path = typer.Argument(..., help="The Triton model repository (from trm-edge export --format triton)."),
    upstream: str = typer.Option(
        ..., "--upstream", help="Triton's HTTP endpoint, HOST:PORT (keep it private: bind it to the loopback)."
    ),
    host: str = typer.Option("0.0.0.0", "--host", help="Address the guard listens on."),
    port: int = typer.Option(8000, "--port", help="Port the guard listens on (the public HTTP port)."),
) -> None:
    """Bound every HTTP inference request before a Triton serving REPOSITORY sees it.

    Triton's HTTP endpoint allocates JSON inputs from the shapes clients declare before it checks
    them against the model, so one request can abort the server. The guard checks each request
    against the repository's config.pbtxt (input names, max_batch_size, dims, JSON data counts,
    binary_data_size) and answers 400 itself when it is out of bounds; the rest passes through.
    """
    from trm_edge.runtime.serving.guard import HttpGuard
    from trm_edge.runtime.serving.limits import repository_limits
    from trm_edge.runtime.serving.server import check_address

    limits = repository_limits(repository)
    if not re.fullmatch(r"[A-Za-z0-9.\-]+:\d{1,5}|\[[0-9A-Fa-f:]+\]:\d{1,5}", upstream):
        raise TrmEdgeError(f"--upstream {upstream!r}: give Triton's HTTP endpoint as HOST:PORT, e.g. 127.0.0.1:8000")
    check_address(host, {"--port": port})
    signal.signal(signal.SIGTERM, _interrupt)
    guard = HttpGuard(host, port, f"http://{upstream}", limits)
    guard.start()
    console.print(
        f"[green]guarding[/] {upstream} on {host}:{port} for {', '.join(sorted(limits))}\nCtrl-C stops.",
        highlight=False,
    )
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        guard.stop()
        console.print("stopped")


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt
