"""Load on `trm-edge serve`: N concurrent clients for T seconds against a real Triton server on the
loopback, every answer checked against the runtime's own answer for the puzzle sent.

    python benchmarks/serve_load.py [EXPORT_DIR --puzzles P.npz] [--clients 1,4,16] [--seconds 10] [--instances 1]
                                    [--max-batch 64] [--rows 1] [--json serve_load.json] [--plot serve_load.png]

Without EXPORT_DIR the shipped Sudoku model is exported (fp32, halting calibrated on its held-out
puzzles) and served. Each run sends, per client, one request after another (tokens, `--rows`
puzzles per request) over HTTP and over gRPC, mixes in malformed requests (`--malformed-every`)
and clients that hang up mid-request (`--hang-up-every` seconds), and reports puzzles/s, p50/p99
request latency, and that nothing was lost, duplicated or crossed. The clients run on the same
machine as the server, so on a small CPU they take cores from it: per-replica figures are a floor.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from trm_edge.contract.held_out import load_puzzles
from trm_edge.contract.triton import Batching
from trm_edge.runtime import Solver
from trm_edge.runtime.serving.server import ServeOptions, SolverServer
from trm_edge.shipped import shipped_checkpoint, shipped_heldout

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the load clients, a test tool
from load_clients import run_load


def shipped_export(folder: Path) -> Path:
    out = folder / "export"
    subprocess.run([sys.executable, "-m", "trm_edge", "export", str(shipped_checkpoint()), "-o", str(out),
                    "--data", str(shipped_heldout())], check=True, capture_output=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("export_dir", type=Path, nargs="?")
    parser.add_argument("--puzzles", type=Path, default=None, help="puzzles for EXPORT_DIR (.npz)")
    parser.add_argument("--clients", default="1,4,16")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--protocols", default="http,grpc")
    parser.add_argument("--instances", type=int, default=1)
    parser.add_argument("--max-batch", type=int, default=64)
    parser.add_argument("--queue-delay-us", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--rows", type=int, default=1, help="puzzles per request")
    parser.add_argument("--malformed-every", type=int, default=10)
    parser.add_argument("--hang-up-every", type=float, default=1.0)
    parser.add_argument("--port", type=int, default=18600, help="HTTP port; gRPC and metrics take the next two")
    parser.add_argument("--json", type=Path, default=Path("serve_load.json"))
    parser.add_argument("--plot", type=Path, default=Path("serve_load.png"))
    args = parser.parse_args()
    console = Console()

    with tempfile.TemporaryDirectory() as tmp:
        export_dir = args.export_dir
        if export_dir is None:
            with console.status("exporting the shipped model"):
                export_dir = shipped_export(Path(tmp))
        solver = Solver.load(export_dir, backend="ort-cpu", max_batch=1)
        if args.export_dir is not None and args.puzzles is None:
            raise SystemExit("with EXPORT_DIR, give --puzzles FILE.npz (its 'inputs' or Sudoku 'puzzles')")
        puzzles = load_puzzles(args.puzzles or shipped_heldout()).inputs
        with console.status("the runtime's own answers"):
            expected = np.stack([r.answer for r in solver.solve(list(puzzles))])
        mean_steps = float(np.mean([r.steps for r in solver.solve(list(puzzles[:200]))]))
        options = ServeOptions(
            host="127.0.0.1", http_port=args.port, grpc_port=args.port + 1, metrics_port=args.port + 2,
            batching=Batching(args.max_batch, args.queue_delay_us, args.instances), backend="ort-cpu",
            threads=args.threads,
        )
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

    table = Table(title=f"trm-edge serve, {args.instances} instance(s), max batch {args.max_batch} "
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
              "max_batch": args.max_batch, "queue_delay_us": args.queue_delay_us, "rows": args.rows,
              "cpus": os.cpu_count(), "mean_steps": mean_steps, "runs": runs}
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    _plot(runs, args.plot, args.instances)
    console.print(f"wrote {args.json} and {args.plot}")
    if any(r["wrong_answers"] or r["errors"] for r in runs):
        raise SystemExit("some answers were wrong or requests failed: see the table")


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


if __name__ == "__main__":
    main()
