"""Test-time versions on the shipped Sudoku model: exact solves against compute.

    python benchmarks/versions_at_test_time.py [--sample 200] [--versions 1 2 4 8 16] [--json out.json] [--plot out.png]

For N versions per puzzle (the plain one first; a puzzle widens only after a version ends
unverified; the first verified version answers), through the runtime (fp32 export, ONNX Runtime
CPU, default verified halting), on seeded `--sample`-puzzle samples of three hard lists of
../shared/data/sudoku-sources (magictour top 1465, forum hardest 1905 11+, forum hardest 1106) and
on the shipped model's 1000 held-out puzzles: exact share, verified share, and mean version-steps
per puzzle (every step of every version run, dropped ones included).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from trm_edge.export.exporter import export_onnx
from trm_edge.runtime.labels import LabelledPuzzles, load_puzzles
from trm_edge.runtime.solver import Solver
from trm_edge.runtime.versions import VersionedRun
from trm_edge.shipped import shipped_checkpoint, shipped_heldout

sys.path.insert(0, str(Path(__file__).parent))
from shipped_model import hard_list

LISTS = ("puzzles3_magictour_top1465", "puzzles5_forum_hardest_1905_11+", "puzzles6_forum_hardest_1106")


def measure(export_dir: Path, puzzles: LabelledPuzzles, versions: int) -> dict[str, float]:
    solver = Solver.load(export_dir, backend="ort-cpu", max_batch=64)
    started = time.perf_counter()
    results = VersionedRun(solver, versions, seed=0).solve([(t, 0) for t in puzzles.inputs])
    seconds = time.perf_counter() - started
    exact = np.mean([(r.answer == label).all() for r, label in zip(results, puzzles.labels, strict=True)])
    return {"versions": versions, "puzzles": len(results), "exact": float(exact),
            "verified": float(np.mean([r.verified for r in results])),
            "mean_version_steps": float(np.mean([r.version_steps for r in results])),
            "mean_steps_of_answer": float(np.mean([r.steps for r in results])),
            "seconds": round(seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=int, default=200)
    parser.add_argument("--versions", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/versions_at_test_time.json"))
    parser.add_argument("--plot", type=Path, default=Path("benchmarks/results/versions_at_test_time.png"))
    args = parser.parse_args()
    console = Console()
    sets = {name.split("_", 1)[1]: hard_list(name, args.sample) for name in LISTS}
    sets["shipped held-out"] = load_puzzles(shipped_heldout(), 81)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        export_dir = export_onnx(shipped_checkpoint(), Path(tmp) / "export", "fp32").directory
        for name, puzzles in sets.items():
            for n in args.versions:
                rows.append({"set": name, **measure(export_dir, puzzles, n)})
                console.print(rows[-1])
    table = Table(title="test-time versions, shipped Sudoku model (exact / mean version-steps per puzzle)")
    table.add_column("set")
    for n in args.versions:
        table.add_column(f"N={n}", justify="right")
    for name in sets:
        cells = {r["versions"]: r for r in rows if r["set"] == name}
        table.add_row(name, *(f"{100 * cells[n]['exact']:.1f}% / {cells[n]['mean_version_steps']:.1f}"
                              for n in args.versions))
    console.print(table)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(rows, indent=2))
    plot(args.plot, rows, list(sets))
    console.print(f"wrote {args.json} and {args.plot}")


def plot(path: Path, rows: list[dict], names: list[str]) -> None:  # type: ignore[type-arg]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name in names:
        mine = [r for r in rows if r["set"] == name]
        ax.plot([r["mean_version_steps"] for r in mine], [100 * r["exact"] for r in mine], marker="o", label=name)
        for r in mine:
            ax.annotate(f"N={r['versions']}", (r["mean_version_steps"], 100 * r["exact"]), fontsize=7,
                        textcoords="offset points", xytext=(3, -9))
    ax.set_xlabel("mean version-steps per puzzle (compute)")
    ax.set_ylabel("exact solves (%)")
    ax.set_title("shipped Sudoku model: test-time versions, first verified wins")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
