"""How good a shipped model is: exact solves with the default (verified) halting, its own halting
and fixed max steps, through the runtime (fp32 export, ONNX Runtime CPU); and where its held-out
puzzles come from.

    python benchmarks/shipped_model.py [--task sudoku] [--model sudoku-small] [--checkpoint CKPT]
                                       [--hard-sample 500] [--json out.json]
    python benchmarks/shipped_model.py --task maze [--checkpoint CKPT] [--versions 8] [--json out.json]
    python benchmarks/shipped_model.py --write-heldout OUT.npz --recipe sudoku-hard-cpu
    python benchmarks/shipped_model.py --task maze --write-heldout trm_edge/models/maze-small.heldout.npz

Sudoku, on
- the 1000 held-out puzzles shipped with each Sudoku model (sudoku-small: generated, 30-40 givens,
  none in training), and
- the hard source lists in ../shared/data/sudoku-sources/solved (magictour top 1465, forum hardest
  1106, 17-clue, forum hardest 1905 11+; a seeded sample of `--hard-sample` from each long list).
Every puzzle runs 16 steps once; fixed-16, the model's own rule and the runtime's default policy
(`auto`: verified halting, which needs no calibration) are read off that recording.

Maze, on the 1000 shipped held-out mazes: read off one recording the same way; then the default
policy live, with and without test-time versions (a maze that does not verify is asked again
reflected or rotated), counting verified answers that are wrong (there must be none). The held-out
mazes come from the recipe's generator and seed (10x10, S-G path 16+, seed 0) at indices from 2**31
on: the training mazes are indices 0..99,999 and the mazes evaluated during training start at
2**30, so none is shared (checked here against the training mazes).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from harness import HARD_LISTS, hard_list, write_json
from rich.console import Console
from rich.table import Table

from trm_edge.contract.held_out import LabelledPuzzles, exact, load_puzzles
from trm_edge.export.exporter import export_onnx
from trm_edge.runtime.calibrate import evaluate, record
from trm_edge.runtime.solver import Solver
from trm_edge.runtime.versions import VersionedRun
from trm_edge.shipped import SHIPPED, shipped_model
from trm_edge.train.maze_generator import generate_mazes
from trm_edge.train.recipe import load_recipe
from trm_edge.train.sudoku_generator import generate_sudokus

HELDOUT_FIRST = 1 << 31  # puzzle indices past the training (0...) and test (1 << 30 ...) ranges
SIZE, MIN_PATH, SEED, TRAIN_COUNT = 10, 16, 0, 100_000  # the maze-small-cpu recipe's data


def write_sudoku_heldout(path: Path, recipe: str = "sudoku-hard-cpu", count: int = 1000) -> None:
    """`count` puzzles from the recipe's own generator settings and seed, at indices it never trains on."""
    gen = load_recipe(recipe).data["generate"]
    guesses = tuple(gen.get("guesses", (0, 1_000_000)))
    puzzles, solutions, _ = generate_sudokus(count, gen["seed"], tuple(gen["givens"]), guesses, first=HELDOUT_FIRST)
    np.savez_compressed(path, puzzles=puzzles.astype(np.uint8), solutions=solutions.astype(np.uint8))


def measure_sudoku_set(solver: Solver, puzzles: LabelledPuzzles, steps: int, policy: str) -> dict[str, float]:
    curve = evaluate(record(solver, puzzles, steps), puzzles.labels, steps)
    by_name = {p["policy"]: p for p in curve["policies"]}
    givens = (puzzles.inputs > 1).sum(1)
    return {"puzzles": len(puzzles), "givens_min": int(givens.min()), "givens_max": int(givens.max()),
            "exact_fixed": curve["exact_by_step"][-1],
            "exact_own": by_name["model"]["exact"], "mean_steps_own": by_name["model"]["mean_steps"],
            "exact_default": by_name[policy]["exact"], "mean_steps_default": by_name[policy]["mean_steps"],
            "verified_default": by_name[policy]["verified"]}


def write_maze_heldout(path: Path, count: int = 1000) -> None:
    inputs, labels, lengths = generate_mazes(count, SIZE, MIN_PATH, SEED, first=HELDOUT_FIRST)
    train, _, _ = generate_mazes(TRAIN_COUNT, SIZE, MIN_PATH, SEED)
    seen = {row.tobytes() for row in train}
    shared = sum(row.tobytes() in seen for row in inputs)
    if shared:
        raise SystemExit(f"{shared} held-out mazes are also training mazes")
    np.savez_compressed(path, inputs=inputs, labels=labels)
    print(f"wrote {path}: {count} mazes, S-G distance {lengths.min()}-{lengths.max()} (mean {lengths.mean():.1f})")


def measure_maze(checkpoint: Path, heldout: Path, versions: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        export_dir = export_onnx(checkpoint, Path(tmp) / "export", "fp32").directory
        solver = Solver.load(export_dir, backend="ort-cpu", slots=64)
        held = load_puzzles(heldout, solver.seq_len, solver.vocab_size)
        steps = solver.max_steps
        curve = evaluate(record(solver, held, steps), held.labels, steps)
        by_name = {p["policy"]: p for p in curve["policies"]}
        policy = solver.policy.name
        results = solver.solve(list(held.inputs))
        right = exact(np.stack([r.answer for r in results]), held.labels)
        verified = np.array([bool(r.verified) for r in results])
        report = {
            "mazes": len(held), "max_steps": steps, "default_policy": policy,
            "exact_default": float(right.mean()), "verified_default": float(verified.mean()),
            "verified_and_wrong": int((verified & ~right).sum()),
            "mean_steps_default": float(np.mean([r.steps for r in results])),
            "exact_own": by_name["model"]["exact"], "mean_steps_own": by_name["model"]["mean_steps"],
            "exact_fixed": curve["exact_by_step"][-1], "exact_by_step": curve["exact_by_step"],
        }
        if versions > 1:
            versioned = VersionedRun(solver, versions).solve([(t, 0) for t in held.inputs])
            v_right = exact(np.stack([r.answer for r in versioned]), held.labels)
            v_verified = np.array([r.verified for r in versioned])
            report["versions"] = {
                "versions": versions, "exact": float(v_right.mean()), "verified": float(v_verified.mean()),
                "verified_and_wrong": int((v_verified & ~v_right).sum()),
                "mean_version_steps": float(np.mean([r.version_steps for r in versioned])),
            }
    return report


def sudoku(args: argparse.Namespace) -> None:
    shipped = shipped_model(args.model)
    checkpoint = args.checkpoint or shipped.checkpoint
    console = Console()
    with tempfile.TemporaryDirectory() as tmp:
        export_onnx(checkpoint, Path(tmp) / "export", "fp32")
        solver = Solver.load(Path(tmp) / "export", backend="ort-cpu", slots=64)
        steps, policy = solver.max_steps, solver.policy.name
        sets = {f"{m.name} held-out: {m.held_out}": load_puzzles(m.heldout, 81)
                for m in SHIPPED.values() if m.task == "sudoku"}
        sets.update({name: hard_list(name, args.hard_sample) for name in HARD_LISTS})
        results = {}
        for name, puzzles in sets.items():
            results[name] = measure_sudoku_set(solver, puzzles, steps, policy)
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
        write_json(args.json, {"default_policy": policy, "sets": results})


def maze(args: argparse.Namespace) -> None:
    shipped = shipped_model("maze")
    report = measure_maze(args.checkpoint or shipped.checkpoint, args.heldout or shipped.heldout, args.versions)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        write_json(args.json, report)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="sudoku", choices=("sudoku", "maze"))
    sudoku_models = [name for name, m in SHIPPED.items() if m.task == "sudoku"]
    parser.add_argument("--model", default="sudoku-small", choices=sudoku_models, help="a shipped Sudoku model")
    parser.add_argument("--checkpoint", type=Path, default=None, help="instead of the shipped model's weights")
    parser.add_argument("--write-heldout", type=Path, default=None,
                        help="write 1000 held-out puzzles (Sudoku: from --recipe's generator settings) and exit")
    parser.add_argument("--recipe", default="sudoku-hard-cpu", help="Sudoku's --write-heldout")
    parser.add_argument("--hard-sample", type=int, default=500, help="Sudoku: puzzles from each long hard list")
    parser.add_argument("--heldout", type=Path, default=None, help="maze: instead of the shipped held-out mazes")
    parser.add_argument("--versions", type=int, default=8, help="maze: test-time versions")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.write_heldout:
        if args.task == "maze":
            write_maze_heldout(args.write_heldout)
        else:
            write_sudoku_heldout(args.write_heldout, args.recipe)
        return
    if args.task == "maze":
        maze(args)
    else:
        sudoku(args)


if __name__ == "__main__":
    main()
