"""Whole `trm-edge solve` commands of two or more installs, interleaved: did a change make what users
run slower on this machine? (For example the commit before a change against the one after it, each
installed in its own environment: `pip install --no-deps -e CHECKOUT` into a copy of the venv.)

    python benchmarks/solve_commands.py --env old=/tmp/vold/bin/python --env new=.venv/bin/python
                                        [--batches 1,16,64] [--puzzles 256] [--fixed-steps 16] [--rounds 3]

Each install exports the shipped Sudoku model itself (its own export: the graph may differ between
commits), then solves the first --puzzles held-out puzzles x --fixed-steps steps with every default
(`trm-edge solve --npz --fixed-steps N --batch B`): once untimed (auto measures and remembers its
choice), then --rounds timed rounds, the installs in turn within each round. Reports the median
seconds, each install's ratio to the first, and the backend each chose. Commands run in a scratch
folder, so no checkout on the working folder shadows an install's package. Name the CPU beside the
figures; compare only ratios of one run on a machine whose speed drifts.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from harness import Command, interleaved_rounds, machine, medians
from rich.console import Console
from rich.table import Table

from trm_edge.shipped import shipped_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", action="append", required=True, help="LABEL=PYTHON (two or more)")
    parser.add_argument("--batches", default="1,16,64")
    parser.add_argument("--puzzles", type=int, default=256)
    parser.add_argument("--fixed-steps", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    envs = dict(e.split("=", 1) for e in args.env)
    envs = {label: str(Path(python).absolute()) for label, python in envs.items()}
    console = Console()
    with tempfile.TemporaryDirectory(prefix="trm-edge-commands-") as scratch:
        work = Path(scratch)
        held_out = np.load(shipped_model("sudoku").heldout)
        np.savez(work / "puzzles.npz", puzzles=held_out["puzzles"][: args.puzzles])
        for label, python in envs.items():
            console.print(f"{label}: exporting the shipped Sudoku model")
            Command(["export", "shipped:sudoku-small", "-o", work / label], python, work)()
        table = Table(title=f"whole solve commands, {args.puzzles} puzzles x {args.fixed_steps} steps, median of "
                            f"{args.rounds} interleaved rounds ({machine()})")
        for column in ("batch", *(f"{label} s" for label in envs), *(f"{label} / {next(iter(envs))}"
                                                                       for label in list(envs)[1:]), "backends"):
            table.add_column(column)
        for batch in (int(b) for b in args.batches.split(",")):
            commands = {label: Command(["solve", work / label, "--npz", work / "puzzles.npz", "--fixed-steps",
                                        str(args.fixed_steps), "--batch", str(batch), "--out", work / "out.npz"],
                                       python, work) for label, python in envs.items()}
            for command in commands.values():  # untimed: auto measures once and remembers
                command()
            chosen = {label: command.backend for label, command in commands.items()}
            seconds = interleaved_rounds(commands, args.rounds)
            median = medians(seconds)
            first = median[next(iter(envs))]
            console.print(f"batch {batch}: " + ", ".join(f"{k} {v:.2f} s {seconds[k]}" for k, v in median.items()))
            table.add_row(str(batch), *(f"{m:.2f}" for m in median.values()),
                          *(f"{median[label] / first:.2f}x" for label in list(envs)[1:]),
                          "; ".join(f"{k}: {v}" for k, v in chosen.items()))
        console.print(table)


if __name__ == "__main__":
    main()
