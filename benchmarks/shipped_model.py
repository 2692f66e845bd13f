"""How good the shipped Sudoku model is: exact solves with the default (verified) halting, its own
halting and fixed 16 steps.

    python benchmarks/shipped_model.py [--checkpoint CKPT] [--hard-sample 500] [--json out.json]

Measured through the runtime (fp32 export, ONNX Runtime CPU) on
- the 1000 shipped held-out puzzles (generated, 30-40 givens, none in training), and
- the hard source lists in ../shared/data/sudoku-sources/solved (magictour top 1465, forum hardest
  1106, 17-clue, forum hardest 1905 11+; a seeded sample of `--hard-sample` from each long list).
Every puzzle runs 16 steps once; fixed-16, the model's own rule and the runtime's default policy
(`auto`: verified halting, which needs no calibration) are read off that recording.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from trm_edge.export.exporter import export_onnx
from trm_edge.runtime.calibrate import evaluate, record
from trm_edge.runtime.labels import LabelledPuzzles, load_puzzles
from trm_edge.runtime.solver import Solver
from trm_edge.shipped import shipped_checkpoint, shipped_heldout
from trm_edge.train.sources import read_sudoku_csv

SOURCES = Path(__file__).resolve().parents[2] / "shared" / "data" / "sudoku-sources" / "solved"
HARD_LISTS = ("puzzles3_magictour_top1465", "puzzles6_forum_hardest_1106", "puzzles2_17_clue",
              "puzzles5_forum_hardest_1905_11+")


def hard_list(name: str, sample: int) -> LabelledPuzzles:
    puzzles, solutions, _ = read_sudoku_csv(SOURCES / f"{name}.csv")
    if len(puzzles) > sample:
        pick = np.sort(np.random.default_rng(0).choice(len(puzzles), sample, replace=False))
        puzzles, solutions = puzzles[pick], solutions[pick]
    n = len(puzzles)
    return LabelledPuzzles(puzzles.astype(np.int32) + 1, solutions.astype(np.int32) + 1, np.zeros(n, np.int32))


def measure(solver: Solver, puzzles: LabelledPuzzles, steps: int, policy: str) -> dict[str, float]:
    curve = evaluate(record(solver, puzzles, steps), puzzles.labels, steps)
    by_name = {p["policy"]: p for p in curve["policies"]}
    givens = (puzzles.inputs > 1).sum(1)
    return {"puzzles": len(puzzles), "givens_min": int(givens.min()), "givens_max": int(givens.max()),
            "exact_fixed": curve["exact_by_step"][-1],
            "exact_own": by_name["model"]["exact"], "mean_steps_own": by_name["model"]["mean_steps"],
            "exact_default": by_name[policy]["exact"], "mean_steps_default": by_name[policy]["mean_steps"],
            "verified_default": by_name[policy]["verified"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--hard-sample", type=int, default=500)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    checkpoint = args.checkpoint or shipped_checkpoint()
    console = Console()
    with tempfile.TemporaryDirectory() as tmp:
        export_onnx(checkpoint, Path(tmp) / "export", "fp32")
        solver = Solver.load(Path(tmp) / "export", backend="ort-cpu", max_batch=64)
        steps, policy = solver.max_steps, solver.policy.name
        sets = {"generated held-out (30-40 givens)": load_puzzles(shipped_heldout(), 81)}
        sets.update({name: hard_list(name, args.hard_sample) for name in HARD_LISTS})
        results = {}
        for name, puzzles in sets.items():
            results[name] = measure(solver, puzzles, steps, policy)
            console.print(name, results[name])
    table = Table(title=f"{checkpoint.name}: exact solves through the runtime (fp32, ORT CPU)")
    for col in ("puzzles", "n", "givens", f"fixed {steps} steps", "own halting", "mean steps", f"default: {policy}",
                "mean steps"):
        table.add_column(col, justify="right")
    for name, r in results.items():
        table.add_row(name, str(r["puzzles"]), f"{r['givens_min']}-{r['givens_max']}", f"{100 * r['exact_fixed']:.1f}%",
                      f"{100 * r['exact_own']:.1f}%", f"{r['mean_steps_own']:.2f}",
                      f"{100 * r['exact_default']:.1f}%", f"{r['mean_steps_default']:.2f}")
    console.print(table)
    if args.json:
        args.json.write_text(json.dumps({"default_policy": policy, "sets": results}, indent=2))


if __name__ == "__main__":
    main()
