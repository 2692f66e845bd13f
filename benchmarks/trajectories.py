"""Trajectories against symmetries: exact solves against version-steps, on the shipped models.

    python benchmarks/trajectories.py [--sets 1106 1905 magictour held-out maze] [--sample 100]
                                      [--budgets 256 1024 2048] [--noisy-up-to 1024]
                                      [--kinds auto symmetries trajectories both] [--scale 0.3]
                                      [--noisy-steps 1] [--max-steps 16] [--no-today]
                                      [--json out.json] [--plots DIR]

Every puzzle runs through the runtime as `trm-edge solve EXPORT --budget N:KIND` runs it (the
shipped model exported fp32, the backend and precision auto picks, verified halting, seed 0): up to
N version-steps a puzzle, each version at most --max-steps (the model's own 16 by default). The
hard lists are seeded samples of ../shared/data/sudoku-sources, each puzzle moved by a seeded
relabelling and reflection (so no puzzle string matches the published list); `held-out` is the
shipped Sudoku model's 1000 held-out puzzles (30-40 givens), `maze` the shipped maze model's 1000.
`today` is the versions of before: 8 symmetries of --max-steps 128 each (the maze: 8 of 16, all it
has). Reported: exact share, verified share, verified-and-wrong (a verified answer that is not the
label: it must be 0), mean version-steps a puzzle, wall seconds; one plot per set. The nudged kinds
(trajectories, both) run only at budgets up to --noisy-up-to (on Sudoku they did not beat
symmetries, and trajectories cost the most), and auto only where it differs from symmetries (a
task whose symmetry group runs out: the maze; a Sudoku's never does, so there auto is symmetries).
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

from trm_edge.atomic import atomic_file, atomic_write
from trm_edge.contract.held_out import LabelledPuzzles, load_puzzles
from trm_edge.errors import TrmEdgeError
from trm_edge.export.exporter import export_onnx
from trm_edge.output_paths import check_output_file, check_output_folder
from trm_edge.runtime.solver import Solver
from trm_edge.runtime.trajectories import DEFAULT_NOISY_STEPS, DEFAULT_SCALE, Noise
from trm_edge.runtime.versions import KINDS, VersionedRun
from trm_edge.shipped import checkpoint_path, shipped_heldout
from trm_edge.tasks.symmetry import SudokuTransform

LISTS = {"magictour": "puzzles3_magictour_top1465", "1905": "puzzles5_forum_hardest_1905_11+",
         "1106": "puzzles6_forum_hardest_1106"}
MODEL_OF = {"maze": "maze-small"}  # every other set runs the shipped Sudoku model
MOVED_BY = 12345  # the seed of the relabelling and reflection of each hard-list puzzle


def moved(puzzles: LabelledPuzzles) -> LabelledPuzzles:
    """Each puzzle and its label under a seeded Sudoku symmetry of its own."""
    rng = np.random.default_rng(MOVED_BY)
    transforms = [SudokuTransform.random(rng) for _ in range(len(puzzles.inputs))]
    inputs = np.stack([t.forward(x) for t, x in zip(transforms, puzzles.inputs, strict=True)]).astype(np.int32)
    labels = np.stack([t.forward(y) for t, y in zip(transforms, puzzles.labels, strict=True)]).astype(np.int32)
    return LabelledPuzzles(inputs, labels, puzzles.puzzle_identifiers)


def the_set(name: str, sample: int) -> LabelledPuzzles:
    if name in LISTS:
        return moved(hard_list(LISTS[name], sample))
    if name == "held-out":
        return load_puzzles(shipped_heldout("sudoku-small"), 81)
    if name == "maze":
        return load_puzzles(shipped_heldout("maze-small"), 100)
    raise SystemExit(f"--sets: {name!r} is not one of {', '.join([*LISTS, 'held-out', 'maze'])}")


def measure(solver: Solver, puzzles: LabelledPuzzles, run: VersionedRun) -> dict[str, float]:
    started = time.perf_counter()
    results = run.solve([(t, 0) for t in puzzles.inputs])
    seconds = time.perf_counter() - started
    right = [bool((r.answer == label).all()) for r, label in zip(results, puzzles.labels, strict=True)]
    return {"puzzles": len(results), "exact": float(np.mean(right)),
            "verified": float(np.mean([r.verified for r in results])),
            "verified_wrong": sum(r.verified and not ok for r, ok in zip(results, right, strict=True)),
            "mean_version_steps": float(np.mean([r.version_steps for r in results])),
            "won_by_nudged": sum(r.verified and r.nudged for r in results),
            "seconds": round(seconds, 1), "engine": solver.engine}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=["1106", "1905", "magictour", "held-out", "maze"])
    parser.add_argument("--sample", type=int, default=100, help="puzzles drawn from each hard list (seed 0)")
    parser.add_argument("--budgets", type=int, nargs="+", default=[256, 1024, 2048])
    parser.add_argument("--noisy-up-to", type=int, default=1024, help="the largest budget the nudged kinds run at")
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    parser.add_argument("--scale", type=float, nargs="+", default=[DEFAULT_SCALE], help="noise scales tried")
    parser.add_argument("--noisy-steps", type=int, default=DEFAULT_NOISY_STEPS)
    parser.add_argument("--max-steps", type=int, default=None, help="steps at most per version (default: the model's)")
    parser.add_argument("--no-today", action="store_true", help="leave out today's 8 versions x 128 steps")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/trajectories.json"))
    parser.add_argument("--plots", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    try:  # a bad output path is one line now, not after the hour of measuring
        check_output_file(args.json, ".json", makes_folders=True)
        check_output_folder(args.plots)
    except TrmEdgeError as exc:
        parser.error(str(exc))
    console = Console()
    rows: list[dict] = []  # type: ignore[type-arg]
    with tempfile.TemporaryDirectory() as tmp:
        exports: dict[str, Path] = {}
        for name in args.sets:
            puzzles = the_set(name, args.sample)
            model = MODEL_OF.get(name, "sudoku-small")
            if model not in exports:
                exports[model] = export_onnx(checkpoint_path(f"shipped:{model}"), Path(tmp) / model, "fp32").directory
            solver = Solver.load(exports[model], slots=64, max_steps=args.max_steps)
            if not args.no_today:
                long_steps = 128 if model == "sudoku-small" else solver.max_steps
                today = Solver.load(exports[model], slots=64, max_steps=long_steps)
                rows.append({"set": name, "kind": "today", "budget": None, "max_steps": long_steps,
                             **measure(today, puzzles, VersionedRun(today, 8))})
                console.print(rows[-1])
            group_runs_out = len(solver.codec.symmetries(64)) < 64  # type: ignore[union-attr]
            for budget in args.budgets:
                for kind in args.kinds:
                    if (kind == "auto" and not group_runs_out) or (kind in ("trajectories", "both")
                                                                   and budget > args.noisy_up_to):
                        continue
                    for scale in ([None] if kind == "symmetries" else args.scale):
                        noise = None if kind == "symmetries" else Noise(scale or DEFAULT_SCALE, args.noisy_steps)
                        run = VersionedRun(solver, budget=budget, kind=kind, noise=noise)
                        rows.append({"set": name, "kind": kind, "budget": budget, "scale": scale,
                                     "noisy_steps": args.noisy_steps, "max_steps": solver.max_steps,
                                     **measure(solver, puzzles, run)})
                        console.print(rows[-1])
    table = Table(title=f"trajectories and symmetries: exact / mean version-steps a puzzle (verified-and-wrong in "
                        f"brackets where not 0; {machine()})")
    for column in ("set", "kind", "scale", "budget", "max steps", "exact", "mean version-steps", "s"):
        table.add_column(column)
    for r in rows:
        wrong = f" [{r['verified_wrong']}]" if r["verified_wrong"] else ""
        table.add_row(r["set"], r["kind"], str(r.get("scale") or ""), str(r["budget"] or "8 versions"),
                      str(r["max_steps"]), f"{100 * r['exact']:.1f}%{wrong}", f"{r['mean_version_steps']:.1f}",
                      str(r["seconds"]))
    console.print(table)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(args.json, json.dumps({"machine": machine(), "rows": rows}, indent=2))
    for name in args.sets:
        console.print(f"wrote {plot(args.plots, name, [r for r in rows if r['set'] == name])}")
    console.print(f"wrote {args.json}")


def plot(folder: Path, name: str, rows: list[dict]) -> Path:  # type: ignore[type-arg]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    lines = sorted({(r["kind"], r.get("scale")) for r in rows if r["kind"] != "today"}, key=str)
    for c, (kind, scale) in enumerate(lines):
        mine = sorted((r for r in rows if r["kind"] == kind and r.get("scale") == scale), key=lambda r: r["budget"])
        label = kind if scale is None else f"{kind}, noise {scale}"
        ax.plot([r["mean_version_steps"] for r in mine], [100 * r["exact"] for r in mine], marker="o",
                color=f"C{c}", label=label)
        for r in mine:
            ax.annotate(f"{r['budget']}", (r["mean_version_steps"], 100 * r["exact"]), fontsize=7,
                        textcoords="offset points", xytext=(3, -9))
    for r in rows:
        if r["kind"] == "today":
            ax.scatter([r["mean_version_steps"]], [100 * r["exact"]], marker="*", s=140, color="black", zorder=3,
                       label=f"today: 8 versions x {r['max_steps']} steps")
    ax.set_xlabel("mean version-steps a puzzle (labels: --budget)")
    ax.set_ylabel("exact solves (%)")
    ax.set_title(f"{name}: versions within a budget, first verified wins")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"trajectories-{name}.png"
    with atomic_file(path) as handle:  # an interrupted write leaves the plot that was there
        fig.savefig(handle, format="png", dpi=120)
    plt.close(fig)
    return path


if __name__ == "__main__":
    main()
