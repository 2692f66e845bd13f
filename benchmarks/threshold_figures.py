"""The figures behind the suite's precision-dependent bars, under every precision auto may pick here.

    python benchmarks/threshold_figures.py [--only trained,shipped,versions,maze-recipe] [--json out.json]

A bar in tests/ that reads a figure the runtime's `auto` produces (or a recipe trained in the
precision the CPU runs natively) must hold at every precision auto can choose, with margin. This
measures each such figure once per candidate auto weighs on this CPU (ONNX Runtime fp32, OpenVINO
fp32, OpenVINO bf16/fp16 where the CPU runs them natively, the int8 step where the export has one),
each pinned, and prints it beside the test's bar and the margin left. Run it on a CPU with native
bf16 and on one without (or with TRM_EDGE_NO_NATIVE_BF16=1, which drops the lowered candidates) and
name the CPU beside the figures (the comments beside the bars in tests/ quote them).

- trained: the Sudoku TRM trained with the official code (tests/fixtures/trained), exported as the
  suite exports it, every default on test_300 (tests/test_verified_halting.py): mean steps, exact.
- shipped: the shipped Sudoku and maze models, as `trm-edge demo` runs them (tests/test_demo.py):
  exact at fixed 16 steps and with default halting on the demo's puzzles.
- versions: `bench_batch(versions=4)` on 32 test_300 puzzles (tests/test_versions.py): exact, verified.
- maze-recipe: the shortened maze-small-cpu run of tests/test_train.py, in bfloat16 where the CPU
  runs it natively and in float32 (the recipe asks bf16; a CPU without it trains fp32).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
from harness import machine
from rich.console import Console
from rich.table import Table

from trm_edge.contract.export_dir import read_metadata
from trm_edge.contract.held_out import exact, load_puzzles
from trm_edge.hardware import NO_NATIVE_BF16_ENV, cpu_has_native_bf16
from trm_edge.runtime.backends.choice import cpu_choices
from trm_edge.runtime.solver import Solver
from trm_edge.runtime.versions import VersionedRun
from trm_edge.train.short_runs import SHORT_MAZE_RUN

REPO = Path(__file__).resolve().parents[1]
TRAINED = REPO / "tests" / "fixtures" / "trained"
PARTS = ("trained", "shipped", "versions", "maze-recipe")
console = Console(width=150)


def candidates(export_dir: Path) -> list[tuple[str, str]]:
    """(backend, precision) pairs auto weighs for this export on this CPU."""
    meta = read_metadata(export_dir)
    return [(c.backend, c.precision) for c in cpu_choices(meta.precision, "auto", meta.int8_step is not None)]


def solve(export_dir: Path, backend: str, precision: str, puzzles: np.ndarray, halt: str = "auto") -> list:  # type: ignore[type-arg]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        solver = Solver.load(export_dir, backend=backend, precision=precision, slots=64, halt=halt)
    return solver.solve(list(puzzles))


def trained_export(folder: Path) -> Path:
    """The official-trained Sudoku fixture, exported as tests/conftest.py exports it."""
    from trm_edge.checkpoint import save_checkpoint
    from trm_edge.convert import convert_official
    from trm_edge.export.exporter import export_onnx

    model = convert_official(TRAINED / "official_sudoku_mlp128.pt", TRAINED / "official_sudoku_mlp128.all_config.yaml",
                             TRAINED / "official_sudoku_mlp128.dataset.json")
    checkpoint = save_checkpoint(model, folder / "sudoku_mlp128.safetensors", info=model.info)
    puzzles = (np.load(TRAINED / "test_300.npz")["puzzles"][:16] + 1).astype(np.int32)
    return export_onnx(checkpoint, folder / "trained", "fp32", tokens=puzzles).directory


def measure_trained(folder: Path) -> list[dict]:  # type: ignore[type-arg]
    export_dir = trained_export(folder)
    data = np.load(TRAINED / "test_300.npz")
    tokens, labels = (data["puzzles"] + 1).astype(np.int32), data["solutions"] + 1
    rows = []
    for backend, precision in candidates(export_dir):
        results = solve(export_dir, backend, precision, tokens)
        right = exact(np.stack([r.answer for r in results]), labels)
        rows.append({"figure": "trained fixture, default halting: mean steps", "bar": "<= 2.8",
                     "engine": f"{backend} {precision}", "value": float(np.mean([r.steps for r in results]))})
        rows.append({"figure": "trained fixture, default halting: exact", "bar": ">= 0.8867 (official loop)",
                     "engine": f"{backend} {precision}", "value": float(right.mean())})
    return rows


def measure_shipped(folder: Path) -> list[dict]:  # type: ignore[type-arg]
    from trm_edge.export.exporter import export_onnx
    from trm_edge.shipped import shipped_checkpoint, shipped_heldout

    rows = []
    for task, seq_len, count, bar in (("sudoku", 81, 64, ">= 0.9"), ("maze", 100, 16, ">= 0.9")):
        export_dir = export_onnx(shipped_checkpoint(task), folder / task, "fp32").directory
        held = load_puzzles(shipped_heldout(task), seq_len).head(count)
        for backend, precision in candidates(export_dir):
            for halt, what in (("fixed:16", "fixed 16 steps"), ("auto", "default halting")):
                results = solve(export_dir, backend, precision, held.inputs, halt)
                right = exact(np.stack([r.answer for r in results]), held.labels)  # type: ignore[arg-type]
                rows.append({"figure": f"shipped {task}, {count} demo puzzles, {what}: exact", "bar": bar,
                             "engine": f"{backend} {precision}", "value": float(right.mean())})
    return rows


def measure_versions(folder: Path) -> list[dict]:  # type: ignore[type-arg]
    export_dir = trained_export(folder)
    data = np.load(TRAINED / "test_300.npz")
    tokens, labels = (data["puzzles"][:32] + 1).astype(np.int32), data["solutions"][:32] + 1
    rows = []
    for backend, precision in candidates(export_dir):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            solver = Solver.load(export_dir, backend=backend, precision=precision, slots=16)
        results = VersionedRun(solver, versions=4, seed=0).solve([(t, 0) for t in tokens])
        right = exact(np.stack([r.answer for r in results]), labels)
        verified = np.mean([bool(r.verified) for r in results])
        for what, value in (("exact", right.mean()), ("verified", verified)):
            rows.append({"figure": f"bench_batch versions=4, 32 puzzles: {what}", "bar": ">= 0.9",
                         "engine": f"{backend} {precision}", "value": float(value)})
    return rows


def measure_maze_recipe(folder: Path) -> list[dict]:  # type: ignore[type-arg]
    rows = []
    native = cpu_has_native_bf16()
    for switched_off in ([False, True] if native else [True]):
        env = {**os.environ, NO_NATIVE_BF16_ENV: "1" if switched_off else "0"}
        out = folder / f"maze-{'fp32' if switched_off else 'bf16'}"
        subprocess.run([sys.executable, "-m", "trm_edge", "train", "maze-small-cpu", "-o", str(out), *SHORT_MAZE_RUN],
                       check=True, env=env, capture_output=True, text=True)
        records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        last = [r for r in records if r["kind"] == "train"][-1]
        engine = "float32" if switched_off else "bfloat16"
        rows.append({"figure": "maze-small-cpu, 20 steps: last answer loss", "bar": "< 1.35", "engine": engine,
                     "value": float(last["answer_loss"])})
        rows.append({"figure": "maze-small-cpu, 20 steps: last cell accuracy", "bar": "> 0.42", "engine": engine,
                     "value": float(last["cell_accuracy"])})
    return rows


MEASURES = {"trained": measure_trained, "shipped": measure_shipped, "versions": measure_versions,
            "maze-recipe": measure_maze_recipe}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts: {', '.join(PARTS)}")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    parts = [p for p in args.only.split(",") if p]
    unknown = set(parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts {sorted(unknown)}: choose from {', '.join(PARTS)}")
    console.print(f"CPU: {machine()}")
    rows: list[dict] = []  # type: ignore[type-arg]
    with tempfile.TemporaryDirectory() as tmp:
        for part in parts:
            console.print(f"measuring {part} ...")
            rows += MEASURES[part](Path(tmp) / part)
    table = Table("figure", "engine", "value", "test's bar")
    for row in rows:
        table.add_row(row["figure"], row["engine"], f"{row['value']:.4g}", row["bar"])
    console.print(table)
    if args.json:
        args.json.write_text(json.dumps({"cpu": machine(), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
