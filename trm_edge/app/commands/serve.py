"""`trm-edge serve`: the export behind a Triton Inference Server; `trm-edge guard`: the HTTP guard alone,
in front of a Triton serving an exported repository (no torch)."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path
from typing import Any

import typer

from trm_edge.app.cli_common import BACKEND, EXPORT_ARGUMENT, HALT, MAX_STEPS, THREADS, console, solver_options
from trm_edge.errors import PassedOverWarning, TrmEdgeError
from trm_edge.output_paths import check_output_file
from trm_edge.runtime.options import SolverOptions

LOG_VARIABLE = "TRM_EDGE_TRITON_LOG"  # keeps Triton's log at this path (else a temporary file, printed)
# Triton dying again this soon after serve started it again is a crash loop: serve exits with the reason.
RESTART_WINDOW_S = 60.0


def serve_command(
    export_dir: Path = EXPORT_ARGUMENT,
    host: str = typer.Option("0.0.0.0", "--host", help="Address the HTTP, gRPC and metrics endpoints bind."),
    port: int = typer.Option(8000, "--port", help="HTTP/REST (KServe v2) port; gRPC takes the next, metrics the one "
                             "after (Triton's 8000, 8001, 8002)."),
    instances: int = typer.Option(1, "--instances", help="Model instances (processes), each with its own solver."),
    slots: int | None = typer.Option(
        None, "--slots", help="Puzzles in flight per instance, its solver's width; also Triton's max_batch_size, the "
        "most puzzles one request may carry [64; an export --batch N: N]."
    ),
    backend: str = BACKEND,
    halt: str = HALT,
    max_steps: int | None = MAX_STEPS,
    threads: int | None = THREADS,
) -> None:
    """Serve an export through NVIDIA Triton Inference Server with dynamic batching.

    Clients send `tokens` (INT32 [n, seq_len], optional `puzzle_identifiers` INT32 [n, 1]) or
    `puzzle` (BYTES [n, 1], Sudoku/Maze text) to the model `trm_solver` and get `answer`,
    `answer_text`, `steps`, `halt_confidence` and `verified`. Health: /v2/health/ready; metrics:
    :PORT+2/metrics. HTTP requests pass a guard that bounds their declared shapes before Triton
    allocates them. If Triton dies, serve starts it again; if it dies again within a minute, serve
    exits non-zero with the reason. Triton's log: a temporary file (kept when Triton fails), or
    TRM_EDGE_TRITON_LOG=PATH.
    """
    from trm_edge.contract.export_dir import read_metadata
    from trm_edge.contract.triton import Batching
    from trm_edge.runtime.serving.server import ServeOptions, SolverServer
    from trm_edge.runtime.solver import slots_for

    log_file = _log_file(export_dir)
    width = slots_for(read_metadata(export_dir), slots, "--slots")  # a fixed-batch export: its batch
    batching = Batching(max_batch=width, instances=instances)
    batching.check()
    if threads is None and instances > 1:  # instances share the cores rather than each taking all of them
        threads = max(1, (os.cpu_count() or 1) // instances)
    # Fail here, with trm-edge's message, rather than in a model load inside Triton's log.
    options = probe_choice(export_dir, solver_options(backend, halt, max_steps, threads, width))
    serving = ServeOptions(host=host, port=port, batching=batching, solver=options, log_file=log_file)
    # SIGTERM (docker stop, Kubernetes) stops as Ctrl-C does.
    signal.signal(signal.SIGTERM, _interrupt)
    server = SolverServer(export_dir, serving)  # checks host and ports first
    name = serving.model_name
    try:
        with console.status("starting Triton Inference Server"):
            server.start()
        console.print(
            f"[green]serving[/] {export_dir} as model [bold]{name}[/] on {options.backend} {options.precision} "
            f"({instances} instance(s), {width} slots each)\n"
            f"  HTTP    {server.http_url}   /v2/models/{name}/infer\n"
            f"  gRPC    {server.grpc_url}\n"
            f"  health  http://{server.http_url}/v2/health/ready\n"
            f"  metrics {server.metrics_url}\n"
            f"  log     {server.log_file}\n"
            "Ctrl-C stops.",
            highlight=False,
        )
        _supervise(server)
    finally:
        server.stop()
        console.print("stopped")


def _supervise(server: Any) -> None:
    """Serve until Ctrl-C / SIGTERM; a Triton that dies is started again, one that dies again within
    RESTART_WINDOW_S of that is a crash loop: a one-line error with the reason, its log kept."""
    restarted_at: float | None = None
    while server.wait():  # Triton died
        reason = server.death_reason()
        if restarted_at is not None and time.monotonic() - restarted_at < RESTART_WINDOW_S:
            server.keep_log = True
            raise TrmEdgeError(f"Triton Inference Server stopped unexpectedly, again within {RESTART_WINDOW_S:.0f} s "
                               f"of being started again: {reason} (its log: {server.log_file})")
        console.print(f"[yellow]Triton stopped unexpectedly ({reason}); starting it again[/]", highlight=False)
        with console.status("restarting Triton Inference Server"):
            try:
                server.restart()
            except TrmEdgeError:
                server.keep_log = True
                raise
        restarted_at = time.monotonic()
        console.print("[green]serving again[/]")


def _log_file(export_dir: Path) -> Path | None:
    """Where TRM_EDGE_TRITON_LOG keeps Triton's log (checked here: Triton opens it), or None."""
    value = os.environ.get(LOG_VARIABLE, "").strip()
    if not value:
        return None
    try:
        check_output_file(value, None, export_dir)
    except TrmEdgeError as exc:
        raise TrmEdgeError(f"{LOG_VARIABLE}: {exc}") from None
    return Path(value)


def probe_choice(export_dir: Path, options: SolverOptions) -> SolverOptions:
    """What the instances run: the export opened as they will open it (auto measures at their width
    and threads), in a child process, so that trm-edge's message comes here rather than in Triton's
    log, and so that nothing the choice loaded stays in the serving process (a process holding
    OpenVINO's compiled-model cache crashed when Triton stopped). The options with the backend and
    precision chosen."""
    import warnings
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        (backend, precision), notes = pool.submit(_open_for_serving, str(export_dir), options).result()
    for note in notes:
        warnings.warn(f"{options.backend} {note}", PassedOverWarning, stacklevel=2)
    return options.with_settings(backend=backend, precision=precision)


def _open_for_serving(export_dir: str, options: SolverOptions) -> tuple[tuple[str, str], list[str]]:
    import warnings

    from trm_edge.runtime.solver import Solver

    with warnings.catch_warnings():  # the notes travel back and are said once, by the serving process
        warnings.simplefilter("ignore", PassedOverWarning)
        probe = Solver.load(export_dir, options)
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
    check_address(host, {"guard's": port})
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
