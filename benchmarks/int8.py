"""int8 against float on the shipped models: accuracy with default halting,
and the step's speed against the same model's best non-int8 path on this machine.

    python benchmarks/int8.py [--puzzles 1000] [--json benchmarks/results/int8.json]

Float: the shipped float checkpoint, exported fp32. int8: its quantization-aware fine-tune
(`*-int8`: recipes sudoku-small-int8 then sudoku-small-int8-hard; maze-small-int8), exported
`--precision int8`. Both are validated on the first 64 held-out puzzles. Accuracy: the held-out
puzzles (and for Sudoku, generated Sudokus with 22-28 givens, harder than the model was trained on),
default halting (verified): exact, mean steps, verified answers that are wrong (must be 0), for ONNX
Runtime and OpenVINO int8 against ONNX Runtime fp32. Speed: milliseconds per step with every slot
full at widths 16 and 64, each backend and precision in interleaved rounds (the machine drifts;
ratios of one run only). Name the CPU beside every figure.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from trm_edge.app.doctor import cpu_summary
from trm_edge.contract.export_dir import read_metadata
from trm_edge.contract.held_out import LabelledPuzzles, exact, load_puzzles
from trm_edge.export.exporter import export_onnx
from trm_edge.runtime.backends.choice import time_steps
from trm_edge.runtime.backends.openvino import native_precisions
from trm_edge.runtime.backends.registry import create_backend
from trm_edge.runtime.solver import Solver
from trm_edge.shipped import shipped_model
from trm_edge.train.sudoku_generator import generate_sudokus

WIDTHS = (16, 64)
ROUNDS = 7  # interleaved timing rounds (each: every candidate a few steps)


def puzzle_sets(task: str, count: int) -> dict[str, LabelledPuzzles]:
    float_model = shipped_model(task)
    held_out = load_puzzles(float_model.heldout, 81 if task == "sudoku" else 100)
    sets = {f"held-out ({float_model.held_out})": held_out.head(count)}
    if task == "sudoku":
        puzzles, solutions, _ = generate_sudokus(count, seed=5, givens=(22, 28), first=10_000_000)
        sets["22-28 givens"] = LabelledPuzzles(puzzles.astype(np.int32) + 1, solutions.astype(np.int32) + 1,
                                               np.zeros(count, np.int32))
    return sets


def accuracy(export: Path, backend: str, precision: str, puzzles: LabelledPuzzles) -> dict[str, Any]:
    solver = Solver.load(export, backend=backend, precision=precision)
    results = solver.solve(list(puzzles.inputs))
    answers = np.stack([r.answer for r in results])
    right = exact(answers, puzzles.labels)  # type: ignore[arg-type]
    verified = np.array([bool(r.verified) for r in results])
    return {"backend": backend, "precision": solver.precision, "exact": float(right.mean()),
            "mean_steps": float(np.mean([r.steps for r in results])), "verified_wrong": int((verified & ~right).sum())}


def speed(float_export: Path, int8_export: Path, puzzles: LabelledPuzzles) -> list[dict[str, Any]]:
    float_meta, int8_meta = read_metadata(float_export), read_metadata(int8_export)
    candidates = [("ort-cpu", "fp32", float_export, float_meta), ("openvino", "fp32", float_export, float_meta)]
    candidates += [("openvino", p, float_export, float_meta) for p in native_precisions("CPU") if p != "fp32"]
    candidates += [("ort-cpu", "int8", int8_export, int8_meta), ("openvino", "int8", int8_export, int8_meta)]
    rows = []
    for width in WIDTHS:
        backends = {f"{b} {p}": create_backend(b, e, m, width, None, p) for b, p, e, m in candidates}
        ids = np.zeros(len(puzzles), np.int32)
        rounds = [time_steps(backends, puzzles.inputs, ids, width) for _ in range(ROUNDS)]
        step_ms = {name: statistics.median(r[name].median_ms for r in rounds) for name in backends}
        best_float = min((n for n in step_ms if not n.endswith("int8")), key=step_ms.__getitem__)
        best_int8 = min((n for n in step_ms if n.endswith("int8")), key=step_ms.__getitem__)
        rows.append({"width": width, "step_ms": step_ms, "best_float": best_float, "best_int8": best_int8,
                     "int8_speedup": step_ms[best_float] / step_ms[best_int8]})
    return rows


def measure(task: str, count: int, folder: Path, console: Console, timed: bool = True) -> dict[str, Any]:
    float_model, int8_model = shipped_model(task), shipped_model(f"{task}-small-int8")
    sets = puzzle_sets(task, count)
    validate_on = next(iter(sets.values())).inputs[:64]
    float_export = export_onnx(float_model.checkpoint, folder / f"{task}-fp32", "fp32", tokens=validate_on).directory
    int8_export = export_onnx(int8_model.checkpoint, folder / f"{task}-int8", "int8", tokens=validate_on).directory
    row: dict[str, Any] = {"task": task, "int8_validation": read_metadata(int8_export).int8, "sets": {}}
    for name, puzzles in sets.items():
        runs = [accuracy(float_export, "ort-cpu", "fp32", puzzles)]
        runs += [accuracy(int8_export, b, "int8", puzzles) for b in ("ort-cpu", "openvino")]
        row["sets"][name] = runs
        for run in runs:
            console.print(f"{task} {name}: {run['backend']} {run['precision']}: exact {run['exact']:.1%}, "
                          f"mean steps {run['mean_steps']:.2f}, verified wrong {run['verified_wrong']}",
                          highlight=False)
    row["speed"] = speed(float_export, int8_export, next(iter(sets.values()))) if timed else []
    for s in row["speed"]:
        console.print(f"{task} width {s['width']}: {s['step_ms']}; best int8 {s['best_int8']} is "
                      f"{s['int8_speedup']:.2f}x the best float ({s['best_float']})", highlight=False)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--puzzles", type=int, default=1000)
    parser.add_argument("--tasks", default="sudoku,maze")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/int8.json"))
    parser.add_argument("--no-speed", action="store_true", help="accuracy only (while the cores are busy)")
    args = parser.parse_args()
    console = Console()
    cpu = cpu_summary()
    console.print(f"CPU: {cpu}")
    with tempfile.TemporaryDirectory() as tmp:
        rows = [measure(task, args.puzzles, Path(tmp), console, not args.no_speed) for task in args.tasks.split(",")]
    table = Table(title=f"int8 against fp32, default halting ({cpu})")
    for column in ("model", "puzzles", "backend", "precision", "exact", "mean steps", "verified & wrong"):
        table.add_column(column)
    for row in rows:
        for name, runs in row["sets"].items():
            for run in runs:
                table.add_row(row["task"], name, run["backend"], run["precision"], f"{run['exact']:.1%}",
                              f"{run['mean_steps']:.2f}", str(run["verified_wrong"]))
    console.print(table)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"cpu": cpu, "models": rows}, indent=2))
    console.print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
