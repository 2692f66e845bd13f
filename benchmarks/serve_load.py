"""Load on `trm-edge serve`: N concurrent clients for T seconds against a real Triton server on the
loopback, every answer checked against the runtime's own answer for the puzzle sent; or, with
--soak MINUTES, the same load in windows for a while, with hostile requests, memory and latency
followed over time.

    python benchmarks/serve_load.py [EXPORT_DIR --puzzles P.npz] [--clients 1,4,16] [--seconds 10] [--instances 1]
                                    [--slots 64] [--rows 1] [--json serve_load.json] [--plot serve_load.png]
    python benchmarks/serve_load.py --soak 10 [--window 20] [--clients 4] [--json soak.json]
                                    [--plot docs/serve-soak.png]
    python benchmarks/serve_load.py --judge soak.json [--warmup 5]      # judge and plot a saved soak again

Without EXPORT_DIR the shipped Sudoku model is exported (fp32, halting calibrated on its held-out
puzzles) and served. Each run sends, per client, one request after another (tokens, `--rows`
puzzles per request) over HTTP and over gRPC, mixes in malformed requests (`--malformed-every`)
and clients that hang up mid-request (`--hang-up-every` seconds), and reports puzzles/s, p50/p99
request latency, and that nothing was lost, duplicated or crossed. The clients run on the same
machine as the server, so on a small CPU they take cores from it: per-replica figures are a floor.

The soak serves the shipped Sudoku model by `trm-edge serve` in its own process, as users run it
(HTTP through its guard, gRPC direct); the clients run in this process. Each `--window` seconds runs
the same load (every 5th request malformed), alternating HTTP and gRPC, while a side thread sends
requests that used to kill or stall the server (runtime/serving/hostile_requests.py: JSON and binary requests
declaring 2**40 rows, binary sizes that disagree with the body, puzzles with non-ASCII digits).
After each window: the resident memory of the whole server (the serve process with its guard,
tritonserver and its Python-backend stubs; not the clients) and whether it still answers health
checks. Passes when no answer was lost, duplicated or wrong, every bad request was refused, memory
grew less than 5% from the end of the warm-up (--warmup minutes) to the end, the p99 latency of
the last third stayed within 1.5x of the first third's (after warm-up), and the server stayed up.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from harness import write_json
from rich.console import Console
from rich.table import Table

from trm_edge.contract.held_out import load_puzzles
from trm_edge.contract.triton import Batching
from trm_edge.runtime import Solver
from trm_edge.runtime.options import SolverOptions
from trm_edge.runtime.serving.hostile_requests import HostileRequest, hostile_requests, post
from trm_edge.runtime.serving.load_clients import run_load, server_ready, start_serve
from trm_edge.runtime.serving.server import ServeOptions, SolverServer
from trm_edge.shipped import shipped_checkpoint, shipped_heldout

HOSTILE = [
    *hostile_requests("tokens", "INT32", [81]),
    *hostile_requests("puzzle", "BYTES", [1]),
    HostileRequest("a puzzle of non-ASCII digits", json.dumps(
        {"inputs": [{"name": "puzzle", "shape": [1, 1], "datatype": "BYTES", "data": ["²" * 81]}]}).encode()),
]


def tree_rss_mb(root: int) -> float:
    """Resident memory of a process and all its descendants (Linux /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):  # gone, or not a process
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
    family, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        children = [p for p, parent in parents.items() if parent == pid and p not in family]
        family.update(children)
        frontier += children
    total = 0
    for pid in family:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def hostile_loop(http: str, model: str, stop: threading.Event, tally: dict[str, int]) -> None:
    while not stop.is_set():
        for request in HOSTILE:
            status, _ = post(http, model, request, timeout=30)
            if status is None:
                tally["unreachable"] += 1
            elif status < 300:
                tally["accepted"] += 1  # must not happen
            else:
                tally["refused" if status == 400 else "other"] += 1
        stop.wait(0.5)


def shipped_export(folder: Path) -> Path:
    out = folder / "export"
    subprocess.run([sys.executable, "-m", "trm_edge", "export", str(shipped_checkpoint()), "-o", str(out),
                    "--data", str(shipped_heldout())], check=True, capture_output=True)
    return out


def runtime_answers(export_dir: Path, puzzles_file: Path, console: Console) -> tuple[Solver, np.ndarray, np.ndarray]:
    """The puzzles and the runtime's own answer to each, which every served answer must equal."""
    solver = Solver.load(export_dir, backend="ort-cpu", slots=1)
    puzzles = load_puzzles(puzzles_file).inputs
    with console.status("the runtime's own answers"):
        expected = np.stack([r.answer for r in solver.solve(list(puzzles))])
    return solver, puzzles, expected


def load(args: argparse.Namespace, console: Console) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        export_dir = args.export_dir
        if export_dir is None:
            with console.status("exporting the shipped model"):
                export_dir = shipped_export(Path(tmp))
        if args.export_dir is not None and args.puzzles is None:
            raise SystemExit("with EXPORT_DIR, give --puzzles FILE.npz (its 'inputs' or Sudoku 'puzzles')")
        solver, puzzles, expected = runtime_answers(export_dir, args.puzzles or shipped_heldout(), console)
        mean_steps = float(np.mean([r.steps for r in solver.solve(list(puzzles[:200]))]))
        options = ServeOptions(host="127.0.0.1", port=args.port,
                               batching=Batching(args.slots, args.queue_delay_us, args.instances),
                               solver=SolverOptions(backend="ort-cpu", threads=args.threads))
        runs = []
        with console.status("starting Triton"):
            server = SolverServer(export_dir, options)
            server.start()
        try:
            for protocol in args.protocols.split(","):
                for clients in [int(c) for c in args.clients.split(",")]:
                    url = server.http_url if protocol == "http" else server.grpc_url
                    with console.status(f"{protocol}: {clients} clients for {args.seconds:.0f} s"):
                        report = run_load(url, options.model_name, puzzles, expected, protocol=protocol,
                                          clients=clients, seconds=args.seconds, rows_per_request=args.rows,
                                          malformed_every=args.malformed_every,
                                          disconnect_every_s=args.hang_up_every, http_url=server.http_url,
                                          vocab_size=solver.vocab_size)
                    runs.append(report.summary())
                    console.print(_row(runs[-1]))
        finally:
            server.stop()

    table = Table(title=f"trm-edge serve, {args.instances} instance(s), {args.slots} slots each "
                        f"({os.cpu_count()} CPUs, clients on the same machine)")
    for col in ("protocol", "clients", "puzzles/s", "p50 ms", "p99 ms", "ok", "wrong", "errors",
                "malformed rejected", "hang-ups"):
        table.add_column(col, justify="right")
    for r in runs:
        table.add_row(r["protocol"], str(r["clients"]), f"{r['puzzles_per_s']:.1f}", f"{r['p50_ms']:.1f}",
                      f"{r['p99_ms']:.1f}", str(r["requests_ok"]), str(r["wrong_answers"]), str(r["errors"]),
                      f"{r['malformed_rejected']}/{r['malformed_sent']}", str(r["disconnects"]))
    console.print(table)
    result = {"export": str(args.export_dir or "shipped sudoku-small"), "instances": args.instances,
              "slots": args.slots, "queue_delay_us": args.queue_delay_us, "rows": args.rows,
              "cpus": os.cpu_count(), "mean_steps": mean_steps, "runs": runs}
    write_json(args.json, result)
    _plot(runs, args.plot, args.instances)
    console.print(f"wrote {args.json} and {args.plot}")
    if any(r["wrong_answers"] or r["errors"] for r in runs):
        raise SystemExit("some answers were wrong or requests failed: see the table")


def soak(args: argparse.Namespace, console: Console) -> None:
    windows = []
    hostile = {"refused": 0, "accepted": 0, "other": 0, "unreachable": 0}
    with tempfile.TemporaryDirectory() as tmp:
        with console.status("exporting the shipped model"):
            export_dir = shipped_export(Path(tmp))
        solver, puzzles, expected = runtime_answers(export_dir, shipped_heldout(), console)
        serve, (http_port, grpc_port, _) = start_serve(export_dir, Path(tmp) / "serve.log", "--backend", "ort-cpu",
                                                       "--slots", "64")
        http_url, grpc_url, model = f"127.0.0.1:{http_port}", f"127.0.0.1:{grpc_port}", "trm_solver"
        stop = threading.Event()
        side = threading.Thread(target=hostile_loop, args=(http_url, model, stop, hostile))
        side.start()
        started = time.monotonic()
        try:
            n = 0
            while time.monotonic() - started < 60 * args.soak:
                protocol = "http" if n % 2 == 0 else "grpc"
                url = http_url if protocol == "http" else grpc_url
                report = run_load(url, model, puzzles, expected, protocol=protocol,
                                  clients=int(args.clients), seconds=args.window, malformed_every=5,
                                  disconnect_every_s=1.0, http_url=http_url, vocab_size=solver.vocab_size)
                row = report.summary() | {"t_s": round(time.monotonic() - started, 1),
                                          "rss_mb": round(tree_rss_mb(serve.pid), 1),
                                          "ready": server_ready(http_url) and serve.poll() is None}
                windows.append(row)
                console.print(
                    f"{row['t_s']:>6.0f} s {protocol:>4}: {row['puzzles_ok']} ok, {row['wrong_answers']} wrong, "
                    f"{row['errors']} errors, {row['malformed_rejected']}/{row['malformed_sent']} malformed refused, "
                    f"p50 {row['p50_ms']:.1f} ms p99 {row['p99_ms']:.1f} ms, server RSS {row['rss_mb']:.0f} MB, "
                    f"ready {row['ready']}"
                )
                n += 1
        finally:
            stop.set()
            side.join()
            serve.send_signal(signal.SIGTERM)
            serve.wait(60)
    verdict = judge(windows, hostile, args.warmup)
    console.print(verdict)
    write_json(args.json, {"verdict": verdict, "windows": windows, "cpus": os.cpu_count()})
    plot(args.plot, windows, args.warmup)
    console.print(f"wrote {args.json} and {args.plot}")


def judge(windows: list[dict], hostile: dict[str, int], warmup_minutes: float) -> dict:  # type: ignore[type-arg]
    """The soak's verdict from its windows (also run on a saved JSON: --judge)."""
    warm = [w for w in windows if w["t_s"] >= 60 * warmup_minutes] or windows
    base, last = warm[0]["rss_mb"], windows[-1]["rss_mb"]
    # p99 stability: the median window p99 of the last third against the first third after warm-up
    # (the windows alternate HTTP and gRPC, so each third holds both).
    third = max(2, len(warm) // 3)
    p99_first = float(np.median([w["p99_ms"] for w in warm[:third]]))
    p99_last = float(np.median([w["p99_ms"] for w in warm[-third:]]))
    verdict = {
        "windows": len(windows),
        "minutes": round(windows[-1]["t_s"] / 60, 1),
        "puzzles_ok": sum(w["puzzles_ok"] for w in windows),
        "wrong_answers": sum(w["wrong_answers"] for w in windows),
        "errors": sum(w["errors"] for w in windows),
        "malformed_sent": sum(w["malformed_sent"] for w in windows),
        "malformed_rejected": sum(w["malformed_rejected"] for w in windows),
        "hang_ups": sum(w["disconnects"] for w in windows),
        "hostile": hostile,
        "warmup_minutes": warmup_minutes,
        "rss_after_warmup_mb": base, "rss_last_mb": last, "rss_growth": round((last - base) / base, 4),
        "rss_max_mb": max(w["rss_mb"] for w in windows),
        "up_throughout": all(w["ready"] for w in windows),
        "p99_first_third_ms": round(p99_first, 1), "p99_last_third_ms": round(p99_last, 1),
    }
    verdict["passed"] = (verdict["wrong_answers"] == 0 and verdict["errors"] == 0
                         and verdict["malformed_rejected"] == verdict["malformed_sent"]
                         and hostile["accepted"] == hostile["other"] == hostile["unreachable"] == 0
                         and verdict["rss_growth"] < 0.05 and verdict["up_throughout"]
                         and p99_last < 1.5 * p99_first)
    return verdict


def plot(path: Path, windows: list[dict], warmup_minutes: float = 0.0) -> None:  # type: ignore[type-arg]
    from trm_edge.pictures import pyplot

    plt = pyplot()
    fig, (mem, lat) = plt.subplots(1, 2, figsize=(11, 4))
    t = [w["t_s"] / 60 for w in windows]
    mem.plot(t, [w["rss_mb"] for w in windows], "o-")
    mem.set_ylim(bottom=0)
    mem.set_xlabel("minutes")
    if warmup_minutes:
        mem.axvline(warmup_minutes, color="gray", ls=":", label="end of warm-up")
        mem.legend(fontsize=8)
    mem.set_ylabel("resident memory of the server, MB")
    mem.set_title("memory (trm-edge serve + tritonserver + stubs)")
    lat.plot(t, [w["p50_ms"] for w in windows], "o-", label="p50")
    lat.plot(t, [w["p99_ms"] for w in windows], "s--", label="p99")
    lat.set_xlabel("minutes")
    lat.set_ylabel("ms per request")
    lat.set_title("latency per window (HTTP and gRPC alternate)")
    lat.legend()
    fig.suptitle("trm-edge serve soak: good, malformed and hostile requests, hang-ups", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _row(r: dict) -> str:
    return (f"{r['protocol']} {r['clients']:>3} clients: {r['puzzles_per_s']:.1f} puzzles/s, p50 {r['p50_ms']:.1f} ms,"
            f" p99 {r['p99_ms']:.1f} ms, {r['requests_ok']} ok, {r['wrong_answers']} wrong, {r['errors']} errors")


def _plot(runs: list[dict], path: Path, instances: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for protocol in sorted({r["protocol"] for r in runs}):
        mine = [r for r in runs if r["protocol"] == protocol]
        clients = [r["clients"] for r in mine]
        ax1.plot(clients, [r["puzzles_per_s"] for r in mine], "o-", label=protocol)
        ax2.plot(clients, [r["p50_ms"] for r in mine], "o-", label=f"{protocol} p50")
        ax2.plot(clients, [r["p99_ms"] for r in mine], "s--", label=f"{protocol} p99")
    ax1.set(xlabel="concurrent clients", ylabel="puzzles/s", title=f"throughput ({instances} instance(s))",
            xscale="log")
    ax2.set(xlabel="concurrent clients", ylabel="ms per request", title="latency", xscale="log", yscale="log")
    ax1.set_ylim(bottom=0)
    ax1.legend()
    ax2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("export_dir", type=Path, nargs="?")
    parser.add_argument("--puzzles", type=Path, default=None, help="puzzles for EXPORT_DIR (.npz)")
    parser.add_argument("--clients", default=None, help="[1,4,16; a soak: 4]")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--protocols", default="http,grpc")
    parser.add_argument("--instances", type=int, default=1)
    parser.add_argument("--slots", type=int, default=64, help="puzzles in flight per instance (max_batch_size)")
    parser.add_argument("--queue-delay-us", type=int, default=1000, help="Triton's (serve's own is 1000)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--rows", type=int, default=1, help="puzzles per request")
    parser.add_argument("--malformed-every", type=int, default=10)
    parser.add_argument("--hang-up-every", type=float, default=1.0)
    parser.add_argument("--port", type=int, default=18600, help="HTTP port; gRPC and metrics take the next two "
                        "(as serve --port)")
    parser.add_argument("--soak", type=float, default=None, metavar="MINUTES",
                        help="the shipped model served by `trm-edge serve` for MINUTES, in load windows")
    parser.add_argument("--window", type=float, default=20.0, help="a soak's seconds per load window")
    parser.add_argument("--warmup", type=float, default=5.0, help="a soak's minutes before memory growth is counted")
    parser.add_argument("--judge", type=Path, default=None, help="only judge and plot a saved soak JSON")
    parser.add_argument("--json", type=Path, default=None, help="[serve_load.json; a soak: serve_soak.json]")
    parser.add_argument("--plot", type=Path, default=None, help="[serve_load.png; a soak: serve_soak.png]")
    args = parser.parse_args()
    soaking = args.soak is not None or args.judge is not None
    name = "serve_soak" if soaking else "serve_load"
    args.json = args.json or Path(f"{name}.json")
    args.plot = args.plot or Path(f"{name}.png")
    args.clients = args.clients or ("4" if soaking else "1,4,16")
    if args.judge is not None:  # a saved run judged again (e.g. with another warm-up)
        saved = json.loads(args.judge.read_text())
        verdict = judge(saved["windows"], saved["verdict"]["hostile"], args.warmup)
        Console().print(verdict)
        plot(args.plot, saved["windows"], args.warmup)
    elif soaking:
        soak(args, Console())
    else:
        load(args, Console())


if __name__ == "__main__":
    main()
