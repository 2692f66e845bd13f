"""What the benchmarks share: the machine's name, interleaved rounds (in-process calls and whole
`trm-edge` commands), medians and spreads, JSON output, the paper-size random TRMs, a step's
FLOPs and the hard Sudoku lists. The scripts beside it import it.

Run as a script, it applies its whole-command rounds to installs: whole `trm-edge solve` commands
of two or more installs, interleaved: did a change make what users run slower on this machine?
(For example the commit before a change against the one after it, each installed in its own
environment: `pip install --no-deps -e CHECKOUT` into a copy of the venv.) Without --env it names
this machine as every benchmark names it.

    python benchmarks/harness.py --env old=/tmp/vold/bin/python --env new=.venv/bin/python
                                 [--batches 1,16,64] [--puzzles 256] [--fixed-steps 16] [--rounds 3]

Each install exports the shipped Sudoku model itself (its own export: the graph may differ between
commits), then solves the first --puzzles held-out puzzles x --fixed-steps steps with every default
(`trm-edge solve PUZZLES.npz --halt fixed:N --slots B`): once untimed (auto measures and remembers its
choice), then --rounds timed rounds, the installs in turn within each round. Reports the median
seconds, each install's ratio to the first, and the backend each chose. Commands run in a scratch
folder, so no checkout on the working folder shadows an install's package. Name the CPU beside the
figures; compare only ratios of one run on a machine whose speed drifts.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from trm_edge.app.doctor import cpu_summary
from trm_edge.config import ModelConfig, swiglu_intermediate
from trm_edge.contract.held_out import LabelledPuzzles
from trm_edge.runtime.bench import interleaved_seconds
from trm_edge.shipped import shipped_model

__all__ = ["Command", "hard_list", "interleaved_rounds", "interleaved_seconds", "machine", "medians",
           "paper_checkpoint", "paper_config", "spread", "step_gflop", "write_json"]

REPO = Path(__file__).resolve().parents[1]
SOURCES = REPO.parent / "shared" / "data" / "sudoku-sources" / "solved"
HARD_LISTS = ("puzzles3_magictour_top1465", "puzzles6_forum_hardest_1106", "puzzles2_17_clue",
              "puzzles5_forum_hardest_1905_11+")


def machine() -> str:
    """The CPU's name and deciding flags, as bench's JSON, doctor and the demo give it (one reader:
    trm_edge.hardware.cpu_name_and_flags)."""
    return cpu_summary()


def interleaved_rounds(calls: Mapping[str, Callable[[], object]], rounds: int,
                       after_round: Callable[[int, dict[str, list[float]]], None] | None = None
                       ) -> dict[str, list[float]]:
    """interleaved_seconds one round at a time, so a long benchmark can say how each round went."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    for round_ in range(rounds):
        for name, seconds in interleaved_seconds(calls, 1).items():
            times[name] += seconds
        if after_round is not None:
            after_round(round_, times)
    return times


def medians(times: Mapping[str, Sequence[float]]) -> dict[str, float]:
    return {name: statistics.median(values) for name, values in times.items()}


def spread(values: Sequence[float]) -> float:
    """The interquartile range over the median (0 for fewer than two values)."""
    if len(values) < 2:
        return 0.0
    low, _, high = statistics.quantiles(values, n=4, method="inclusive")
    return (high - low) / statistics.median(values)


class Command:
    """A whole `trm-edge` command as a call for interleaved_rounds: each run must succeed, and the
    backend its output names (`... backend NAME)`) is kept, since auto may choose differently per run."""

    def __init__(self, args: Sequence[str | Path], python: str = sys.executable, cwd: Path | None = None) -> None:
        self.args, self.python, self.cwd = [str(a) for a in args], python, cwd
        self.backend, self.output = "?", ""

    def __call__(self) -> str:
        done = subprocess.run([self.python, "-m", "trm_edge", *self.args], cwd=self.cwd, capture_output=True,
                              text=True)
        if done.returncode != 0:
            raise SystemExit(f"{self.python} trm-edge {' '.join(self.args)} failed:\n{done.stdout}\n{done.stderr}")
        self.output = done.stdout + done.stderr
        found = re.findall(r"backend ([^)]*)\)", self.output)
        self.backend = found[-1] if found else "?"
        return self.output

    def timed(self) -> float:
        """One run's wall seconds (for a command interleaved by hand with calls of another kind)."""
        return interleaved_seconds({"run": self}, 1)["run"][0]


def write_json(path: Path, payload: Mapping[str, Any], indent: int = 2) -> None:
    """The figures with the machine they were measured on (payload's own "cpu" wins)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"cpu": machine(), **payload}, indent=indent) + "\n")


# The paper's sizes with random weights: a step's cost does not depend on the weights.
PAPER = {
    "sudoku": dict(arch="trm", seq_len=81, vocab_size=11, hidden_size=512, H_cycles=3, L_cycles=6, L_layers=2,
                   num_heads=8, expansion=4, pos_encodings="none", mlp_t=True, halt_max_steps=16, task="sudoku"),
    "arc": dict(arch="trm", seq_len=900, vocab_size=12, hidden_size=512, num_heads=8, expansion=4,
                pos_encodings="rope", mlp_t=False, L_layers=2, H_cycles=3, L_cycles=4, puzzle_emb_ndim=512,
                puzzle_emb_len=16, halt_max_steps=16, forward_dtype="float32", task="arc"),
}


def paper_config(task: str, puzzle_identifiers: int = 1001) -> ModelConfig:
    """The paper's Sudoku TRM (MLP across positions) or ARC TRM (attention, puzzle embedding)."""
    fields: dict[str, Any] = dict(PAPER[task])
    if task == "arc":
        fields["num_puzzle_identifiers"] = puzzle_identifiers
    return ModelConfig(**fields)


def paper_checkpoint(task: str, path: Path, puzzle_names: list[str] | None = None) -> Path:
    """A paper-size TRM with random weights (seeded), saved; ARC's names its puzzle identifiers."""
    import torch

    from trm_edge.checkpoint import save_checkpoint
    from trm_edge.model import RecursiveReasoningModel

    torch.manual_seed(0)
    model = RecursiveReasoningModel(paper_config(task, len(puzzle_names) if puzzle_names else 1001))
    return save_checkpoint(model, path, {"puzzle_names": puzzle_names} if puzzle_names else None)


def step_gflop(c: ModelConfig, batch: int) -> float:
    """Matrix-product FLOPs of one supervision step (2 per multiply-add), counted analytically."""
    t, d = c.total_len, c.hidden_size
    mlp = 2 * t * d * 3 * swiglu_intermediate(d, c.expansion)
    mixer_mlp = 2 * d * t * 3 * swiglu_intermediate(t, c.expansion)
    mixer_attention = 2 * t * d * 4 * d + 2 * 2 * t * t * d  # qkv + output projections, scores + mix
    mixer = mixer_mlp if c.mlp_t else mixer_attention
    per_block = mlp + mixer
    blocks = c.H_cycles * (c.L_cycles * c.L_layers + (c.H_layers if c.arch == "hrm" else c.L_layers))
    return batch * (blocks * per_block + 2 * c.seq_len * d * c.vocab_size) / 1e9


def hard_list(name: str, sample: int) -> LabelledPuzzles:
    """One hard Sudoku list of ../shared/data/sudoku-sources, a seeded sample of `sample` if longer."""
    from trm_edge.train.sources import read_sudoku_csv

    puzzles, solutions, _ = read_sudoku_csv(SOURCES / f"{name}.csv")
    if len(puzzles) > sample:
        pick = np.sort(np.random.default_rng(0).choice(len(puzzles), sample, replace=False))
        puzzles, solutions = puzzles[pick], solutions[pick]
    n = len(puzzles)
    return LabelledPuzzles(puzzles.astype(np.int32) + 1, solutions.astype(np.int32) + 1, np.zeros(n, np.int32))


def installs() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", action="append", default=[], help="LABEL=PYTHON (two or more)")
    parser.add_argument("--batches", default="1,16,64")
    parser.add_argument("--puzzles", type=int, default=256)
    parser.add_argument("--fixed-steps", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not args.env:
        print(machine())
        return
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
            commands = {label: Command(["solve", work / label, work / "puzzles.npz", "--halt",
                                        f"fixed:{args.fixed_steps}", "--slots", str(batch), "-o", work / "out.npz"],
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
    installs()
