"""Every test-time version of every puzzle, run to the end and recorded step by step: what the
versions that verify look like, what the hopeless ones look like, and what a rule that stops the
hopeless early would save and lose.

    python benchmarks/version_traces.py [--checkpoint CKPT] [--versions 16] [--steps 16] [--sample 200]
                                        [--samples A,B] [--out benchmarks/results/version_traces]

For each of the three hard lists of ../shared/data/sudoku-sources and each sample (A: the seed-0
draw the versions benchmark uses; B: a disjoint draw, seed 1), every puzzle is asked in all
`--versions` versions (the symmetries VersionedRun draws with seed 0, plain first) for `--steps`
steps through the runtime (fp32 export, ONNX Runtime CPU), and per version and step the trace
keeps: verified, the halting score, whether the answer changed, the rule breaks in the answer (cells
that clash with another in a row, column or box, or change a given) and whether the answer mapped back
is the label. Saved as one .npz per list and sample (`OUT_LIST_SAMPLE.npz`), read by
benchmarks/version_cuts.py.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from harness import SOURCES
from rich.console import Console
from rich.progress import Progress

from trm_edge.contract.held_out import LabelledPuzzles, exact
from trm_edge.export.exporter import export_onnx
from trm_edge.runtime.calibrate import record
from trm_edge.runtime.solver import Solver
from trm_edge.shipped import shipped_checkpoint
from trm_edge.tasks import SudokuCodec
from trm_edge.tasks.sudoku import rule_breaks
from trm_edge.train.sources import read_sudoku_csv

LISTS = ("puzzles3_magictour_top1465", "puzzles5_forum_hardest_1905_11+", "puzzles6_forum_hardest_1106")


def sample(name: str, size: int, which: str) -> LabelledPuzzles:
    """A: the seed-0 draw of `size` (as benchmarks/shipped_model.hard_list draws it); B: `size`
    others, drawn with seed 1 from the rest."""
    puzzles, solutions, _ = read_sudoku_csv(SOURCES / f"{name}.csv")
    everything = np.arange(len(puzzles))
    a = np.sort(np.random.default_rng(0).choice(len(puzzles), size, replace=False)) if len(puzzles) > size \
        else everything
    if which == "A":
        pick = a
    else:
        rest = np.setdiff1d(everything, a)
        pick = np.sort(np.random.default_rng(1).choice(rest, min(size, len(rest)), replace=False))
    n = len(pick)
    return LabelledPuzzles(puzzles[pick].astype(np.int32) + 1, solutions[pick].astype(np.int32) + 1,
                           np.zeros(n, np.int32))


def trace(solver: Solver, puzzles: LabelledPuzzles, versions: int, steps: int) -> dict[str, np.ndarray]:
    symmetries = SudokuCodec().symmetries(versions, seed=0)
    p = len(puzzles)
    inputs = np.stack([s.forward(puzzles.inputs) for s in symmetries], axis=1).reshape(p * versions, 81)
    flat = LabelledPuzzles(inputs.astype(np.int32), None, np.zeros(p * versions, np.int32))
    with Progress(console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task(f"{p} puzzles x {versions} versions x {steps} steps", total=len(flat))
        rec = record(solver, flat, steps, progress=lambda n: progress.advance(task, n))
    answers = rec.answers.reshape(steps, p, versions, 81)
    right = np.zeros((steps, p, versions), dtype=bool)
    for v, symmetry in enumerate(symmetries):
        back = symmetry.inverse(answers[:, :, v].reshape(steps * p, 81)).reshape(steps, p, 81)
        right[:, :, v] = np.stack([exact(back[t], puzzles.labels) for t in range(steps)])
    changed = np.ones((steps, p, versions), dtype=bool)
    changed[1:] = (answers[1:] != answers[:-1]).any(axis=-1)
    breaks = rule_breaks(np.tile(inputs, (steps, 1)), rec.answers.reshape(steps * p * versions, 81))
    return {"verified": rec.verified.reshape(steps, p, versions), "score": rec.scores.reshape(steps, p, versions),
            "changed": changed, "breaks": breaks.reshape(steps, p, versions).astype(np.int16), "right": right}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=None, help="default: the shipped sudoku-small")
    parser.add_argument("--versions", type=int, default=16)
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--sample", type=int, default=200)
    parser.add_argument("--samples", default="A,B")
    parser.add_argument("--lists", default=",".join(LISTS))
    parser.add_argument("--out", default="benchmarks/results/version_traces")
    args = parser.parse_args()
    console = Console()
    checkpoint = args.checkpoint or shipped_checkpoint()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        export_dir = export_onnx(checkpoint, Path(tmp) / "export", "fp32").directory
        solver = Solver.load(export_dir, backend="ort-cpu", max_batch=64, halt=f"fixed:{args.steps}",
                             max_steps=args.steps)
        for name in args.lists.split(","):
            for which in args.samples.split(","):
                started = time.perf_counter()
                puzzles = sample(name, args.sample, which)
                data = trace(solver, puzzles, args.versions, args.steps)
                path = Path(f"{args.out}_{name.split('_', 1)[1]}_{which}.npz")
                np.savez_compressed(path, **data, checkpoint=str(checkpoint))
                verified_any = data["verified"].any(axis=(0, 2)).mean()
                console.print(f"{name} {which}: {len(puzzles)} puzzles, {verified_any:.1%} verify in some version "
                              f"within {args.steps} steps ({time.perf_counter() - started:.0f} s) -> {path}")


if __name__ == "__main__":
    main()
