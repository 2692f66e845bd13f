"""The phone runtimes' programs against ONNX Runtime fp32 on the shipped Sudoku model: answers on the
held-out puzzles with every default halting, and the time of one step and of the whole solve.

    python benchmarks/edge_formats.py [--puzzles 256] [--formats executorch,litert] [--export DIR] [--json OUT]

Exports shipped:sudoku-small once per format (`trm-edge export --format F`, validated), then solves
the first `--puzzles` held-out puzzles with `--backend F` and with `--backend ort-cpu` on the same
export: answers that differ, exact rates, verified answers that are wrong, mean steps, and the
medians of interleaved rounds of the whole solve (timed in-process, after the programs are loaded).
Name the CPU beside every figure.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from trm_edge.app.doctor import cpu_summary
from trm_edge.contract.held_out import LabelledPuzzles, exact, load_puzzles
from trm_edge.export.formats import OnnxOptions, export
from trm_edge.runtime.solver import Solver
from trm_edge.shipped import checkpoint_path, shipped_model

ROUNDS = 3


def solve(solver: Solver, puzzles: LabelledPuzzles) -> tuple[dict[str, Any], float]:
    started = time.perf_counter()
    results = solver.solve(list(puzzles.inputs))
    seconds = time.perf_counter() - started
    answers = np.stack([r.answer for r in results])
    right = exact(answers, puzzles.labels)  # type: ignore[arg-type]
    verified = np.array([bool(r.verified) for r in results])
    return {"answers": answers, "exact": float(right.mean()), "verified_wrong": int((verified & ~right).sum()),
            "mean_steps": float(np.mean([r.steps for r in results]))}, seconds


def measure(format: str, export_dir: Path, puzzles: LabelledPuzzles, console: Console) -> dict[str, Any]:
    if not (export_dir / "trm_edge.json").is_file():
        export(checkpoint_path("shipped:sudoku-small"), export_dir, format,
               onnx=OnnxOptions(held_out=shipped_held_out()), console=console)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        solvers = {name: Solver.load(export_dir, backend=name, precision="fp32") for name in ("ort-cpu", format)}
    runs: dict[str, dict[str, Any]] = {}
    seconds: dict[str, list[float]] = {name: [] for name in solvers}
    for _ in range(ROUNDS):
        for name, solver in solvers.items():
            runs[name], took = solve(solver, puzzles)
            seconds[name].append(took)
    differ = int((runs[format]["answers"] != runs["ort-cpu"]["answers"]).any(axis=1).sum())
    return {"format": format, "puzzles": len(puzzles), "answers_differ": differ,
            **{f"{name}_{key}": value for name, run in runs.items() for key, value in run.items() if key != "answers"},
            **{f"{name}_solve_s": statistics.median(s) for name, s in seconds.items()}}


def shipped_held_out() -> LabelledPuzzles:
    return load_puzzles(shipped_model("sudoku").heldout, 81, 11)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--puzzles", type=int, default=256)
    parser.add_argument("--formats", default="executorch,litert")
    parser.add_argument("--export", type=Path, default=Path("benchmarks/results/edge_exports"))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    console = Console()
    puzzles = shipped_held_out().head(args.puzzles)
    table = Table(title=f"phone runtimes vs ONNX Runtime fp32, shipped Sudoku, {len(puzzles)} held-out puzzles "
                        f"({cpu_summary()})")
    for column in ("format", "answers differ", "exact (format / ORT)", "verified wrong", "mean steps",
                   "solve s (format / ORT)"):
        table.add_column(column)
    rows = []
    for format in args.formats.split(","):
        row = measure(format, args.export / format, puzzles, console)
        rows.append(row)
        table.add_row(format, f"{row['answers_differ']} of {row['puzzles']}",
                      f"{row[f'{format}_exact']:.1%} / {row['ort-cpu_exact']:.1%}",
                      str(row[f"{format}_verified_wrong"]),
                      f"{row[f'{format}_mean_steps']:.2f} / {row['ort-cpu_mean_steps']:.2f}",
                      f"{row[f'{format}_solve_s']:.2f} / {row['ort-cpu_solve_s']:.2f}")
    console.print(table)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"cpu": cpu_summary(), "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
