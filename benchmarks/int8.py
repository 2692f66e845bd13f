"""int8 against float on the shipped models, like for like: accuracy with default halting, and
whole `trm-edge solve` commands at each precision.

    python benchmarks/int8.py [--puzzles 1000] [--tasks sudoku,maze] [--no-speed] [--json benchmarks/results/int8.json]

Three models on the same puzzles, each with every default but the precision:
- the int8 fine-tune (`*-int8`: recipes sudoku-small-int8 then sudoku-small-int8-hard; maze-small-int8),
  exported `--precision int8`, run with every default (auto: the fastest int8 or float path here
  that passes its check), and its int8 step on each CPU backend by name (the validated form);
- its own float twin: the same export's float32 step (the fine-tune's weights without rounding);
- the shipped float model it came from, exported fp32.
Puzzles: the shipped held-out ones (Sudoku: the first 500, 30-40 givens; maze: 1000) and, for
Sudoku, `--puzzles` generated with 22-26 givens from a seed no recipe trains on. Paired: for each
pair, the puzzles one solves and the other does not, both ways. Speed (Sudoku): `trm-edge solve
PUZZLES.npz --halt fixed:16 --slots B --backend P` as whole commands on the int8 export, P = fp32,
bf16 (where native) and int8, each with auto's fastest form of it, in interleaved rounds (medians),
and the best int8 path against the best other. Name the CPU beside every figure.
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from harness import Command, interleaved_rounds, machine, medians, spread, write_json
from rich.console import Console
from rich.table import Table

from trm_edge.contract.held_out import LabelledPuzzles, exact, load_puzzles
from trm_edge.export.exporter import export_onnx
from trm_edge.runtime.backends.openvino import native_precisions
from trm_edge.runtime.solver import Solver
from trm_edge.shipped import shipped_model
from trm_edge.train.sudoku_generator import generate_sudokus

BATCHES = (16, 64)
ROUNDS = 3  # interleaved rounds of whole commands
SPEED_PUZZLES = 256
HARD_SEED, HARD_FIRST = 5, 10_000_000  # generated Sudokus no recipe trains on (recipes use seeds 0 and 12)


def puzzle_sets(task: str, count: int) -> dict[str, LabelledPuzzles]:
    float_model = shipped_model(task)
    held_out = load_puzzles(float_model.heldout, 81 if task == "sudoku" else 100)
    if task != "sudoku":
        return {f"held-out ({float_model.held_out})": held_out.head(count)}
    puzzles, solutions, _ = generate_sudokus(count, seed=HARD_SEED, givens=(22, 26), first=HARD_FIRST)
    return {"held-out, 30-40 givens": held_out.head(min(count, 500)),
            "22-26 givens": LabelledPuzzles(puzzles.astype(np.int32) + 1, solutions.astype(np.int32) + 1,
                                            np.zeros(count, np.int32))}


def run(export: Path, backend: str, precision: str, puzzles: LabelledPuzzles) -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        solver = Solver.load(export, backend=backend, precision=precision)
    results = solver.solve(list(puzzles.inputs))
    right = exact(np.stack([r.answer for r in results]), puzzles.labels)  # type: ignore[arg-type]
    verified = np.array([bool(r.verified) for r in results])
    return {"engine": solver.engine, "exact": float(right.mean()),
            "mean_steps": float(np.mean([r.steps for r in results])), "verified_wrong": int((verified & ~right).sum()),
            "right": right}


def paired(a: np.ndarray, b: np.ndarray) -> dict[str, int]:
    return {"only_first": int((a & ~b).sum()), "only_second": int((~a & b).sum())}


def whole_commands(export: Path, folder: Path, console: Console) -> list[dict[str, Any]]:
    """Median seconds of `trm-edge solve PUZZLES.npz --halt fixed:16 --slots B --backend P`, interleaved."""
    held = load_puzzles(shipped_model("sudoku").heldout, 81).head(SPEED_PUZZLES)
    source = folder / "speed.npz"
    np.savez(source, inputs=held.inputs)
    precisions = ["fp32", *(p for p in native_precisions("CPU") if p == "bf16"), "int8"]
    commands = {(batch, precision): Command(["solve", export, source, "-o", folder / "out.npz",
                                             "--halt", "fixed:16", "--slots", str(batch), "--backend", precision])
                for batch in BATCHES for precision in precisions}
    calls = {f"{batch} {precision}": command for (batch, precision), command in commands.items()}

    def said(round_: int, times: dict[str, list[float]]) -> None:
        for batch in BATCHES:
            console.print(f"round {round_ + 1}/{ROUNDS}, batch {batch}: " + ", ".join(
                f"{p} {times[f'{batch} {p}'][-1]:.1f} s" for p in precisions), highlight=False)

    times = interleaved_rounds(calls, ROUNDS, said)
    median = medians(times)
    seconds = {key: median[name] for name, key in zip(calls, commands, strict=True)}
    spreads = {key: spread(times[name]) for name, key in zip(calls, commands, strict=True)}
    engines = {key: command.backend for key, command in commands.items()}
    rows = []
    for batch in BATCHES:
        by_precision = {p: seconds[batch, p] for p in precisions}
        best_other = min((p for p in precisions if p != "int8"), key=by_precision.__getitem__)
        rows.append({"batch": batch, "seconds": {p: round(v, 2) for p, v in by_precision.items()},
                     "spread": {p: round(spreads[batch, p], 3) for p in precisions},  # interquartile / median
                     "engines": {p: engines[batch, p] for p in precisions}, "best_other": best_other,
                     "int8_speedup": round(by_precision[best_other] / by_precision["int8"], 3)})
        console.print(f"batch {batch}: int8 ({engines[batch, 'int8']}) {by_precision['int8']:.2f} s against "
                      f"{best_other} ({engines[batch, best_other]}) {by_precision[best_other]:.2f} s: "
                      f"{rows[-1]['int8_speedup']}x",
                      highlight=False)
    return rows


def measure(task: str, count: int, folder: Path, console: Console, timed: bool) -> dict[str, Any]:
    float_model, int8_model = shipped_model(task), shipped_model(f"{task}-small-int8")
    sets = puzzle_sets(task, count)
    validate_on = next(iter(sets.values())).inputs[:64]
    float_export = export_onnx(float_model.checkpoint, folder / f"{task}-fp32", "fp32", tokens=validate_on).directory
    int8_export = export_onnx(int8_model.checkpoint, folder / f"{task}-int8", "int8", tokens=validate_on).directory
    row: dict[str, Any] = {"task": task, "sets": {}}
    for name, puzzles in sets.items():
        runs = {"int8, every default": run(int8_export, "auto", "auto", puzzles),
                "int8 on ort-cpu": run(int8_export, "ort-cpu", "int8", puzzles),
                "int8 on openvino": run(int8_export, "openvino", "int8", puzzles),
                "its float twin (fp32)": run(int8_export, "ort-cpu", "fp32", puzzles),
                f"shipped {float_model.name} (fp32)": run(float_export, "ort-cpu", "fp32", puzzles)}
        ours = runs["int8, every default"]["right"]
        pairs = {other: paired(ours, r["right"]) for other, r in runs.items() if not other.startswith("int8")}
        row["sets"][name] = {"runs": {k: {f: v for f, v in r.items() if f != "right"} for k, r in runs.items()},
                             "paired_with_int8_default": pairs, "puzzles": len(puzzles)}
        for label, r in runs.items():
            console.print(f"{task} {name}: {label} ({r['engine']}): exact {r['exact']:.1%}, mean steps "
                          f"{r['mean_steps']:.2f}, verified wrong {r['verified_wrong']}", highlight=False)
        for other, p in pairs.items():
            console.print(f"  paired with {other}: int8 alone solves {p['only_first']}, it alone {p['only_second']}",
                          highlight=False)
    row["speed"] = whole_commands(int8_export, folder, console) if timed and task == "sudoku" else []
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--puzzles", type=int, default=1000, help="generated hard Sudokus (and held-out mazes)")
    parser.add_argument("--tasks", default="sudoku,maze")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/int8.json"))
    parser.add_argument("--no-speed", action="store_true", help="accuracy only (while the cores are busy)")
    args = parser.parse_args()
    console = Console(width=160)
    cpu = machine()
    console.print(f"CPU: {cpu}")
    with tempfile.TemporaryDirectory() as tmp:
        rows = [measure(task, args.puzzles, Path(tmp), console, not args.no_speed) for task in args.tasks.split(",")]
    table = Table(title=f"int8 like for like, default halting ({cpu})")
    for column in ("model", "puzzles", "run", "engine", "exact", "mean steps", "verified & wrong"):
        table.add_column(column)
    for row in rows:
        for name, found in row["sets"].items():
            for label, r in found["runs"].items():
                table.add_row(row["task"], name, label, r["engine"], f"{r['exact']:.1%}", f"{r['mean_steps']:.2f}",
                              str(r["verified_wrong"]))
    console.print(table)
    write_json(args.json, {"cpu": cpu, "models": rows})
    console.print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
