"""`trm-edge demo`: the whole path on the shipped Sudoku model, on this machine, in about a minute.

export to ONNX (validated against PyTorch) -> load in the torch-free runtime (ONNX Runtime CPU)
-> solve held-out puzzles -> show some solved grids -> accuracy with the model's own halting
against fixed 16 steps -> speed against PyTorch eager running the official loop on the same
weights -> a plot and a JSON file of every figure.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from rich.columns import Columns
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from trm_edge.checkpoint import read_header
from trm_edge.shipped import SHIPPED_NAME, shipped_checkpoint, shipped_heldout

SPEED_BATCHES = (1, 64)
# Halting is calibrated on the last puzzles of the held-out file, never on the ones measured.
CALIBRATION_PUZZLES = 128  # two full batches of 64


def run_demo(
    out: Path, console: Console, puzzles: int = 192, threads: int | None = None, shown: int = 3
) -> dict[str, Any]:
    from trm_edge.export.exporter import export
    from trm_edge.runtime.bench import bench_batch
    from trm_edge.runtime.calibrate import calibrate, evaluate, record, store
    from trm_edge.runtime.labels import LabelledPuzzles, load_puzzles
    from trm_edge.runtime.plots import plot_bench
    from trm_edge.runtime.solver import Solver
    from trm_edge.torch_eval import torch_baseline

    started = time.perf_counter()
    phases: dict[str, float] = {}

    def lap(name: str) -> None:  # seconds spent per phase, for demo.json
        phases[name] = round(time.perf_counter() - started - sum(phases.values()), 2)

    checkpoint = shipped_checkpoint()
    config, info = read_header(checkpoint)
    every = load_puzzles(shipped_heldout(), config.seq_len)
    measurable = len(every) - CALIBRATION_PUZZLES
    if not 1 <= puzzles <= measurable:
        from trm_edge.errors import TrmEdgeError

        raise TrmEdgeError(f"--puzzles must lie in [1, {measurable}], got {puzzles}")
    held_out = every.head(puzzles)
    calibration_set = LabelledPuzzles(every.inputs[measurable:], every.labels[measurable:],  # type: ignore[index]
                                      every.puzzle_identifiers[measurable:])
    recipe = info.get("recipe", {})
    console.rule(f"[bold]trm-edge demo[/]: {SHIPPED_NAME}")
    console.print(
        f"model: {config.arch.upper()} hidden {config.hidden_size}, {'MLP' if config.mlp_t else 'attention'} mixing, "
        f"H_cycles {config.H_cycles} x L_cycles {config.L_cycles}, up to {config.halt_max_steps} steps; "
        f"trained with `{info.get('command', '?')}` (recipe {recipe.get('name', '?')}, {info.get('step', '?')} steps)"
    )
    console.print(f"held-out: {len(held_out)} generated 9x9 Sudokus with 30-40 givens, none seen in training")

    # 1. export (validated)
    export_dir = out / "export"
    result = export(checkpoint, export_dir, "fp32", tokens=held_out.inputs[:16])
    report = result.validation
    diffs = [c.value for c in report.checks if c.kind == "max_abs_diff"] if report else []
    worst = max(diffs) if diffs else float("nan")
    console.print(f"[green]exported[/] {export_dir}/init.onnx + step.onnx, validated against PyTorch over "
                  f"{report.steps if report else 0} steps (max |diff| {worst:.1e})")

    lap("export")

    # 2. halting: the fewest-steps policy within half a point of fixed max steps, chosen on puzzles
    #    that are not measured below, becomes the export's default
    solver = Solver.load(export_dir, backend="ort-cpu", max_batch=64, halt="model", threads=threads)
    calibration = calibrate(solver, calibration_set)
    store(export_dir, calibration, f"{SHIPPED_NAME}.heldout.npz[{measurable}:]")
    policy = calibration["chosen"]["policy"]

    lap("calibrate")

    # 3. accuracy on the measured puzzles: every step recorded once, each policy replayed on it
    recording = record(solver, held_out, config.halt_max_steps)
    curve = evaluate(recording, held_out.labels, config.halt_max_steps)
    by_name = {p["policy"]: p for p in curve["policies"]}
    own, calibrated = by_name["model"], by_name[policy]
    fixed = curve["exact_by_step"][-1]

    lap("accuracy")

    # 4. speed: the runtime's loop with the calibrated halting vs PyTorch eager, fixed 16 steps
    rows, results = [], []
    for batch in SPEED_BATCHES:
        subset = held_out.head(_speed_puzzles(batch, len(held_out)))
        live = Solver.load(export_dir, backend="ort-cpu", max_batch=batch, halt="calibrated", threads=threads)
        rows.append(asdict(bench_batch(live, subset)) | {"engine": "trm-edge runtime (ONNX Runtime CPU)"})
        if batch == max(SPEED_BATCHES):
            results = live.solve([held_out.inputs[i] for i in range(shown)])
    torch_rows = [
        torch_baseline(checkpoint, held_out.head(_speed_puzzles(b, len(held_out))), [b], threads)[0]
        for b in SPEED_BATCHES
    ]

    lap("speed")

    # 5. what a person looks at: grids, tables, a plot
    codec = solver.codec
    assert codec is not None
    panels = []
    for r in results:
        ok = bool(((r.answer == held_out.labels[r.index]) | (held_out.labels[r.index] == 0)).all())
        verdict = "[green]solved" if ok else "[red]wrong"
        title = f"puzzle {r.index + 1}: {r.steps} step{'s' if r.steps > 1 else ''} {verdict}"
        panels.append(Panel(codec.render(r.puzzle, r.answer), title=title, expand=False))
    console.print(Columns(panels))
    console.print("[dim]bold: givens; cyan: filled in by the model[/]")

    acc = Table(title=f"accuracy on {len(held_out)} held-out puzzles")
    for col in ("halting", "exact solves", "mean steps"):
        acc.add_column(col, justify="right")
    acc.add_row("the model's own (q_halt > 0)", f"{100 * own['exact']:.1f}%", f"{own['mean_steps']:.2f}")
    acc.add_row(f"calibrated: {policy} (chosen on {len(calibration_set)} other puzzles)",
                f"{100 * calibrated['exact']:.1f}%", f"{calibrated['mean_steps']:.2f}")
    acc.add_row(f"fixed {config.halt_max_steps} steps (official loop)", f"{100 * fixed:.1f}%",
                f"{config.halt_max_steps}")
    console.print(acc)

    speed = Table(title="speed on this machine (same weights, same puzzles)")
    for col in ("engine", "batch", "puzzles", "puzzles/s", "latency p50 ms", "mean steps", "exact", "speed-up"):
        speed.add_column(col, justify="right")
    for row, base in zip(rows, torch_rows, strict=True):
        speed.add_row(f"trm-edge runtime, {policy}", str(row["batch"]), str(row["puzzles"]),
                      f"{row['puzzles_per_s']:.1f}", f"{row['latency_ms']['p50']:.1f}", f"{row['mean_steps']:.2f}",
                      f"{100 * row['exact']:.1f}%", f"{row['puzzles_per_s'] / base['puzzles_per_s']:.1f}x")
        speed.add_row("PyTorch eager, fixed steps", str(base["batch"]), str(base["puzzles"]),
                      f"{base['puzzles_per_s']:.1f}", f"{base['step_ms'] * base['steps']:.1f}", str(base["steps"]),
                      f"{100 * base['exact']:.1f}%", "1.0x")
    console.print(speed)

    plot = plot_bench(out / "demo.png", rows, curve, f"{SHIPPED_NAME}: trm-edge runtime (ONNX Runtime CPU)")
    summary = {
        "model": SHIPPED_NAME, "checkpoint": str(checkpoint), "export_dir": str(export_dir),
        "validation_max_abs_diff": worst, "puzzles": len(held_out),
        "exact_own_halting": own["exact"], "mean_steps_own_halting": own["mean_steps"],
        "calibrated_policy": policy, "exact_calibrated": calibrated["exact"],
        "mean_steps_calibrated": calibrated["mean_steps"],
        "exact_fixed_steps": fixed, "fixed_steps": config.halt_max_steps,
        "exact_by_step": curve["exact_by_step"], "runtime": rows, "torch": torch_rows,
        "speedup": [r["puzzles_per_s"] / b["puzzles_per_s"] for r, b in zip(rows, torch_rows, strict=True)],
        "seconds": time.perf_counter() - started, "phase_seconds": phases, "plot": str(plot),
    }
    (out / "demo.json").write_text(json.dumps(summary, indent=2, default=_plain))
    console.print(f"plot: [bold]{plot}[/]   figures: {out / 'demo.json'}   export: {export_dir}   "
                  f"({summary['seconds']:.0f} s)")
    return summary


def _speed_puzzles(batch: int, available: int) -> int:
    # Enough puzzles for a steady figure without a long wait: 16 one at a time, else one full batch.
    return min(available, 16 if batch == 1 else batch)


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
