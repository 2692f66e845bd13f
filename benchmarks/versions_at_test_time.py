"""Test-time versions on the shipped Sudoku models: exact solves against compute.

    python benchmarks/versions_at_test_time.py [--models sudoku-small CKPT ...] [--sample 200]
                                               [--versions 1 2 4 8 16] [--longer 32 64]
                                               [--max-steps M] [--sets magictour ...]
                                               [--json out.json] [--plot out.png]

For N versions per puzzle (the plain one first; a puzzle widens only after a version ends
unverified; the first verified version answers), through the runtime (fp32 export, ONNX Runtime
CPU, default verified halting), on seeded `--sample`-puzzle samples of three hard lists of
../shared/data/sudoku-sources (magictour top 1465, forum hardest 1905 11+, forum hardest 1106) and
on sudoku-small's 1000 held-out puzzles (generated, 30-40 givens): exact share, verified share, and
mean version-steps per puzzle (every step of every version run, dropped ones included); and the
plain version with a longer recursion than training's 16 steps (`--longer`). `--max-steps M` gives
every version of the versions rows M steps at most instead of the model's own halt_max_steps;
`--sets` keeps only the samples whose names contain one of its words (`--sets 1106 held-out`).
`--models` takes shipped model names or checkpoint files.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from harness import hard_list, machine
from rich.console import Console
from rich.table import Table

from trm_edge.contract.held_out import LabelledPuzzles, load_puzzles
from trm_edge.export.exporter import export_onnx
from trm_edge.runtime.solver import Solver
from trm_edge.runtime.versions import VersionedRun
from trm_edge.shipped import checkpoint_path, shipped_heldout

LISTS = ("puzzles3_magictour_top1465", "puzzles5_forum_hardest_1905_11+", "puzzles6_forum_hardest_1106")


def measure(
    export_dir: Path, puzzles: LabelledPuzzles, versions: int, max_steps: int | None = None
) -> dict[str, float]:
    solver = Solver.load(export_dir, backend="ort-cpu", slots=64, max_steps=max_steps)
    started = time.perf_counter()
    results = VersionedRun(solver, versions, seed=0).solve([(t, 0) for t in puzzles.inputs])
    seconds = time.perf_counter() - started
    exact = np.mean([(r.answer == label).all() for r, label in zip(results, puzzles.labels, strict=True)])
    return {"versions": versions, "max_steps": solver.max_steps, "puzzles": len(results), "exact": float(exact),
            "verified": float(np.mean([r.verified for r in results])),
            "mean_version_steps": float(np.mean([r.version_steps for r in results])),
            "mean_steps_of_answer": float(np.mean([r.steps for r in results])),
            "seconds": round(seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["sudoku-small"],
                        help="shipped model names or .safetensors checkpoints")
    parser.add_argument("--sample", type=int, default=200)
    parser.add_argument("--versions", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--longer", type=int, nargs="*", default=[32, 64],
                        help="also the plain version with this many steps at most (longer recursion than training's)")
    parser.add_argument("--max-steps", type=int, default=None,
                        help="steps at most for every version of the versions rows (default: the model's own)")
    parser.add_argument("--sets", nargs="+", default=None,
                        help="only the samples whose names contain one of these words (default: all four)")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/versions_at_test_time.json"))
    parser.add_argument("--plot", type=Path, default=Path("benchmarks/results/versions_at_test_time.png"))
    args = parser.parse_args()
    console = Console()
    sets = {name.split("_", 1)[1]: hard_list(name, args.sample) for name in LISTS}
    sets["sudoku-small held-out"] = load_puzzles(shipped_heldout("sudoku-small"), 81)
    if args.sets:
        sets = {name: puzzles for name, puzzles in sets.items() if any(word in name for word in args.sets)}
        if not sets:
            parser.error(f"--sets {' '.join(args.sets)} names none of the samples")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models:
            checkpoint = checkpoint_path(model if model.endswith(".safetensors") else f"shipped:{model}")
            export_dir = export_onnx(checkpoint, Path(tmp) / model.replace("/", "_"), "fp32").directory
            for name, puzzles in sets.items():
                for n in args.versions:
                    rows.append({"model": model, "set": name, **measure(export_dir, puzzles, n, args.max_steps)})
                    console.print(rows[-1])
                for steps in args.longer:
                    rows.append({"model": model, "set": name, "longer": True,
                                 **measure(export_dir, puzzles, 1, max_steps=steps)})
                    console.print(rows[-1])
    limit = f", every version {args.max_steps} steps at most" if args.max_steps else ""
    table = Table(title=f"test-time versions, shipped Sudoku models (exact / mean version-steps per puzzle{limit}; "
                        f"{machine()})")
    table.add_column("model")
    table.add_column("set")
    for n in args.versions:
        table.add_column(f"N={n}", justify="right")
    for steps in args.longer:
        table.add_column(f"N=1, {steps} steps", justify="right")
    for model in args.models:
        for name in sets:
            mine = [r for r in rows if r["set"] == name and r["model"] == model]
            cells = [next(r for r in mine if r["versions"] == n and "longer" not in r) for n in args.versions]
            cells += [next(r for r in mine if r.get("longer") and r["max_steps"] == m) for m in args.longer]
            table.add_row(model, name, *(f"{100 * c['exact']:.1f}% / {c['mean_version_steps']:.1f}" for c in cells))
    console.print(table)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(rows, indent=2))
    plot(args.plot, rows, list(sets), args.models)
    console.print(f"wrote {args.json} and {args.plot}")


def plot(path: Path, rows: list[dict], names: list[str], models: list[str]) -> None:  # type: ignore[type-arg]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for m, model in enumerate(models):
        for c, name in enumerate(names):
            mine = [r for r in rows if r["set"] == name and r["model"] == model and "longer" not in r]
            ax.plot([r["mean_version_steps"] for r in mine], [100 * r["exact"] for r in mine], marker="os"[m % 2],
                    linestyle=("-", "--")[m % 2], color=f"C{c}", label=f"{Path(model).stem}: {name}")
            for r in mine:
                ax.annotate(f"N={r['versions']}", (r["mean_version_steps"], 100 * r["exact"]), fontsize=7,
                            textcoords="offset points", xytext=(3, -9))
    ax.set_xlabel("mean version-steps per puzzle (compute)")
    ax.set_ylabel("exact solves (%)")
    ax.set_title("shipped Sudoku models: test-time versions, first verified wins")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
