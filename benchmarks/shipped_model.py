"""How good a shipped Sudoku model is: exact solves with the default (verified) halting, its own
halting and fixed 16 steps.

    python benchmarks/shipped_model.py [--model sudoku-small] [--checkpoint CKPT] [--hard-sample 500]
                                       [--json out.json]
    python benchmarks/shipped_model.py --write-heldout OUT.npz --recipe sudoku-hard-cpu

Measured through the runtime (fp32 export, ONNX Runtime CPU) on
- the 1000 held-out puzzles shipped with each Sudoku model (sudoku-small: generated, 30-40 givens,
  none in training), and
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
from harness import HARD_LISTS, hard_list
from rich.console import Console
from rich.table import Table

from trm_edge.contract.held_out import LabelledPuzzles, load_puzzles
from trm_edge.export.exporter import export_onnx
from trm_edge.runtime.calibrate import evaluate, record
from trm_edge.runtime.solver import Solver
from trm_edge.shipped import SHIPPED, shipped_model
from trm_edge.train.recipe import load_recipe
from trm_edge.train.sudoku_generator import generate_sudokus

HELDOUT_FIRST = 1 << 31  # puzzle indices past the training (0...) and test (1 << 30 ...) ranges


def write_heldout(path: Path, recipe: str = "sudoku-hard-cpu", count: int = 1000) -> None:
    """`count` puzzles from the recipe's own generator settings and seed, at indices it never trains on."""
    gen = load_recipe(recipe).data["generate"]
    guesses = tuple(gen.get("guesses", (0, 1_000_000)))
    puzzles, solutions, _ = generate_sudokus(count, gen["seed"], tuple(gen["givens"]), guesses, first=HELDOUT_FIRST)
    np.savez_compressed(path, puzzles=puzzles.astype(np.uint8), solutions=solutions.astype(np.uint8))


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
    sudoku_models = [name for name, m in SHIPPED.items() if m.task == "sudoku"]
    parser.add_argument("--model", default="sudoku-small", choices=sudoku_models)
    parser.add_argument("--checkpoint", type=Path, default=None, help="instead of the shipped model's weights")
    parser.add_argument("--write-heldout", type=Path, default=None,
                        help="write 1000 held-out puzzles from --recipe's generator settings and exit")
    parser.add_argument("--recipe", default="sudoku-hard-cpu")
    parser.add_argument("--hard-sample", type=int, default=500)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.write_heldout:
        write_heldout(args.write_heldout, args.recipe)
        return
    shipped = shipped_model(args.model)
    checkpoint = args.checkpoint or shipped.checkpoint
    console = Console()
    with tempfile.TemporaryDirectory() as tmp:
        export_onnx(checkpoint, Path(tmp) / "export", "fp32")
        solver = Solver.load(Path(tmp) / "export", backend="ort-cpu", max_batch=64)
        steps, policy = solver.max_steps, solver.policy.name
        sets = {f"{m.name} held-out: {m.held_out}": load_puzzles(m.heldout, 81)
                for m in SHIPPED.values() if m.task == "sudoku"}
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
