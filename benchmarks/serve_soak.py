"""A bounded soak of `trm-edge serve`: good, malformed and hostile requests and hang-ups for a while,
every answer checked, memory and latency followed over time.

    python benchmarks/serve_soak.py [--minutes 10] [--window 20] [--json soak.json] [--plot docs/serve-soak.png]

The shipped Sudoku model is served on the loopback by `trm-edge serve` in its own process, as users
run it (HTTP through its guard, gRPC direct); the clients run in this process.
Each window runs the load runner (tests/load_clients.py: N clients, every answer compared with
the runtime's own answer for the puzzle sent, every k-th request malformed, a client hanging up
mid-request every second), alternating HTTP and gRPC, while a side thread sends requests that
used to kill or stall the server (tests/hostile_requests.py: JSON and binary requests declaring
2**40 rows, binary sizes that disagree with the body, puzzles with non-ASCII digits).
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
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from rich.console import Console

from trm_edge.contract.held_out import load_puzzles
from trm_edge.runtime.solver import Solver
from trm_edge.shipped import shipped_heldout

sys.path.insert(0, str(Path(__file__).parent))
from serve_load import shipped_export

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the test tools
from conftest import start_serve
from hostile_requests import HostileRequest, hostile_requests, post
from load_clients import run_load, server_ready

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--window", type=float, default=20.0, help="seconds per load window")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--port", type=int, default=18700, help="HTTP port; gRPC and metrics take the next two")
    parser.add_argument("--json", type=Path, default=Path("serve_soak.json"))
    parser.add_argument("--plot", type=Path, default=Path("serve_soak.png"))
    parser.add_argument("--warmup", type=float, default=5.0, help="minutes before memory growth is counted")
    parser.add_argument("--judge", type=Path, default=None, help="only judge and plot a saved soak JSON")
    args = parser.parse_args()
    if args.judge is not None:  # a saved run judged again (e.g. with another warm-up)
        saved = json.loads(args.judge.read_text())
        verdict = judge(saved["windows"], saved["verdict"]["hostile"], args.warmup)
        Console().print(verdict)
        plot(args.plot, saved["windows"], args.warmup)
        return
    console = Console()
    windows = []
    hostile = {"refused": 0, "accepted": 0, "other": 0, "unreachable": 0}
    with tempfile.TemporaryDirectory() as tmp:
        with console.status("exporting the shipped model"):
            export_dir = shipped_export(Path(tmp))
        solver = Solver.load(export_dir, backend="ort-cpu", max_batch=1)
        puzzles = load_puzzles(shipped_heldout()).inputs
        with console.status("the runtime's own answers"):
            expected = np.stack([r.answer for r in solver.solve(list(puzzles))])
        serve, (http_port, grpc_port, _) = start_serve(export_dir, Path(tmp) / "serve.log", "--backend", "ort-cpu",
                                                       "--max-batch", "64", "--queue-delay-us", "1000")
        http_url, grpc_url, model = f"127.0.0.1:{http_port}", f"127.0.0.1:{grpc_port}", "trm_solver"
        stop = threading.Event()
        side = threading.Thread(target=hostile_loop, args=(http_url, model, stop, hostile))
        side.start()
        started = time.monotonic()
        try:
            n = 0
            while time.monotonic() - started < 60 * args.minutes:
                protocol = "http" if n % 2 == 0 else "grpc"
                url = http_url if protocol == "http" else grpc_url
                report = run_load(url, model, puzzles, expected, protocol=protocol,
                                  clients=args.clients, seconds=args.window, malformed_every=5,
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
    args.json.write_text(json.dumps({"verdict": verdict, "windows": windows, "cpus": os.cpu_count()}, indent=2))
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
    from trm_edge.runtime.plots import _pyplot

    plt = _pyplot()
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


if __name__ == "__main__":
    main()
