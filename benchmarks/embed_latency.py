"""What solve.onnx costs against the Python runtime, and what a browser gets.

    python benchmarks/embed_latency.py [--puzzles 128] [--browser-puzzles 64] [--json embed_latency.json]

The shipped Sudoku model, exported with --solve-graph, on its held-out puzzles, one puzzle at a
time (what an app that solves what a user typed does):
- batch-1 latency per puzzle, interleaved puzzle by puzzle: solve.onnx in plain ONNX Runtime (CPU)
  against `Solver.solve([puzzle])` with the runtime's defaults (backend auto) and with ort-cpu;
- in headless Chromium (Debian's chromium through examples/web/drive.mjs; needs node, npm and
  chromium), puzzles/s of the page's solve.onnx on WASM with one thread, and with the threads a
  cross-origin-isolated page may use.
Name the CPU beside every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from harness import machine
from rich.console import Console
from rich.table import Table

from trm_edge.contract.held_out import load_puzzles
from trm_edge.export.web_site import serve_site
from trm_edge.runtime.solver import Solver
from trm_edge.shipped import shipped_heldout

REPO = Path(__file__).resolve().parents[1]


def latency(export_dir: Path, puzzles: np.ndarray) -> dict[str, dict[str, float]]:
    import onnxruntime

    graph = onnxruntime.InferenceSession(str(export_dir / "solve.onnx"), providers=["CPUExecutionProvider"])
    auto = Solver.load(export_dir, slots=1)
    ort = Solver.load(export_dir, backend="ort-cpu", slots=1)
    ways = {"solve.onnx, ONNX Runtime CPU": lambda p: graph.run(None, {"tokens": p[None]}),
            f"Python runtime, auto ({auto.backend_name} {auto.precision})": lambda p: auto.solve([p]),
            "Python runtime, ort-cpu": lambda p: ort.solve([p])}
    times: dict[str, list[float]] = {name: [] for name in ways}
    for way in ways.values():
        way(puzzles[0])  # warm-up
    for puzzle in puzzles:  # interleaved: a drifting machine slows every way alike
        for name, way in ways.items():
            start = time.perf_counter()
            way(puzzle)
            times[name].append(time.perf_counter() - start)
    return {name: {"median_ms": round(1e3 * statistics.median(t), 3),
                   "p90_ms": round(1e3 * float(np.quantile(t, 0.9)), 3)} for name, t in times.items()}


def browser(site: Path, count: int) -> list[dict[str, object]]:
    web = REPO / "examples" / "web"
    rows = []
    for isolated in (False, True):
        with serve_site(site, isolated=isolated) as url:
            proc = subprocess.run(["node", "drive.mjs", "bench", f"{url}/index.html", str(count), "graph-wasm"],
                                  cwd=web, capture_output=True, text=True, timeout=900,
                                  env={**os.environ, "CHROMIUM": shutil.which("chromium") or "/usr/bin/chromium"})
        if proc.returncode != 0:
            raise SystemExit(f"the browser run failed: {proc.stderr[-1500:]}")
        rows.append({"isolated": isolated, **json.loads(proc.stdout.strip().splitlines()[-1])})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--puzzles", type=int, default=128)
    parser.add_argument("--browser-puzzles", type=int, default=64)
    parser.add_argument("--json", type=Path, default=Path("embed_latency.json"))
    args = parser.parse_args()
    console = Console()
    cpu = machine()
    console.print(f"CPU: {cpu}")
    heldout = shipped_heldout("sudoku")
    puzzles = load_puzzles(heldout, 81).inputs[: args.puzzles]
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp) / "site"
        web = REPO / "examples" / "web"
        ort_web = web / "node_modules" / "onnxruntime-web" / "dist"
        command = [sys.executable, "-m", "trm_edge", "export", "shipped:sudoku-small", "--format", "web", "-o",
                   str(site), "--data", str(heldout), "--no-calibrate"]
        command += ["--ort-web", str(ort_web)] if ort_web.is_dir() else []
        subprocess.run(command, check=True, capture_output=True)
        batch1 = latency(site, puzzles)
        pages = browser(site, args.browser_puzzles) if ort_web.is_dir() and shutil.which("node") else []
    table = Table(title=f"one puzzle at a time, shipped Sudoku model, {len(puzzles)} held-out puzzles ({cpu})")
    for column in ("way", "median ms / puzzle", "p90 ms"):
        table.add_column(column, justify="right")
    for name, row in batch1.items():
        table.add_row(name, f"{row['median_ms']:.2f}", f"{row['p90_ms']:.2f}")
    for row in pages:
        table.add_row(f"headless Chromium, solve.onnx on WASM, {row['threads']} thread(s)",
                      f"{1e3 / float(row['puzzles_per_s']):.2f}", f"{float(row['puzzles_per_s']):.1f} puzzles/s")
    console.print(table)
    args.json.write_text(json.dumps({"cpu": cpu, "batch1": batch1, "browser": pages}, indent=2))
    console.print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
