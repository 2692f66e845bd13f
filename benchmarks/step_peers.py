"""The runtime's step against every PyTorch peer on this machine (README's peers table).

    python benchmarks/step_peers.py [--batches 1,16,64] [--rounds 7] [--whole 16,64] [--whole-rounds 3]
                                    [--json step_peers.json]
    python benchmarks/step_peers.py --paper --batches 16,64 --whole ""     # random weights, hidden 512

Part 1, one step: the shipped Sudoku model (or, with --paper, a TRM at the paper's Sudoku size with
random weights), median of --rounds interleaved runs at each batch, every slot full:
- the runtime's backends as `Solver.load` opens them: ONNX Runtime fp32, OpenVINO fp32, OpenVINO
  bf16 / fp16 where this CPU runs them natively;
- the same ONNX Runtime step on the export graph as it was before the export rewrites (gate/up and
  q/k/v as one product split in half, transposes around the token-mixing MLP);
- PyTorch eager fp32, eager with bf16 autocast (where the CPU has bf16), torch.compile (and at bf16).
Part 2, whole runs (--whole): the shipped model's first 256 held-out puzzles x 16 fixed steps,
`trm-edge solve PUZZLES.npz --halt fixed:16 --slots B` timed as a whole command (every default) against
each PyTorch peer's official loop (in-process, after its warm-up and compilation), with exact.
Part 3 (--profile): OpenVINO's per-op counters for the step at each native precision and batch
(benchmarks/step_profile.py has the options tried and the loop's own cost).
Each step's GFLOP/s is beside it (its matrix products, counted by benchmarks/harness.py). Name the
CPU beside every figure; on a VM whose speed drifts compare only ratios of one run.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from harness import Command, machine, paper_checkpoint, step_gflop, write_json
from rich.console import Console
from rich.table import Table

from trm_edge import layers
from trm_edge.app.torch_eval import (
    PEER_ROUNDS,
    PeerModel,
    available_peers,
    interleaved_steps,
    peer_threads,
    run_fixed_steps,
)
from trm_edge.checkpoint import read_header
from trm_edge.contract.export_dir import read_metadata
from trm_edge.contract.held_out import exact, load_puzzles
from trm_edge.export.exporter import export_onnx
from trm_edge.runtime.backends.openvino import native_precisions
from trm_edge.runtime.backends.registry import create_backend
from trm_edge.runtime.bench import full_slot_stepper
from trm_edge.shipped import shipped_checkpoint, shipped_heldout


def checkpoint_for(paper: bool, folder: Path) -> Path:
    return paper_checkpoint("sudoku", folder / "paper_sudoku.safetensors") if paper else shipped_checkpoint()


def export(checkpoint: Path, folder: Path, rewrites: bool, validate_steps: int = 4) -> Path:
    layers.EXPORT_REWRITES = rewrites
    try:
        return export_onnx(checkpoint, folder, "fp32", validate_steps=validate_steps).directory
    finally:
        layers.EXPORT_REWRITES = True


def runtime_engines(export_dir: Path, legacy_dir: Path, threads: int) -> dict[str, Callable[[int], object]]:
    """name -> (width -> a backend at that width)."""
    meta = read_metadata(export_dir)
    engines = {"trm-edge ort-cpu fp32": lambda w: create_backend("ort-cpu", export_dir, meta, w, threads, "fp32"),
               "trm-edge ort-cpu fp32, graph before the rewrites":
                   lambda w: create_backend("ort-cpu", legacy_dir, read_metadata(legacy_dir), w, threads, "fp32"),
               "trm-edge openvino fp32": lambda w: create_backend("openvino", export_dir, meta, w, threads, "fp32")}
    for precision in native_precisions("CPU"):
        if precision != "fp32":
            engines[f"trm-edge openvino {precision}"] = (
                lambda w, p=precision: create_backend("openvino", export_dir, meta, w, threads, p))
    # The forms auto also weighs (backends/choice.py): a step compiled for the width, the batch in streams.
    for precision in (p for p in native_precisions("CPU") if p != "fp16"):
        engines[f"trm-edge openvino {precision} static"] = (
            lambda w, p=precision: create_backend("openvino", export_dir, meta, w, threads, p, static_width=w))
        engines[f"trm-edge openvino {precision} streams:{threads}"] = (
            lambda w, p=precision: create_backend("openvino", export_dir, meta, w, threads, p, streams=threads))
    return engines


def step_table(checkpoint: Path, export_dir: Path, legacy_dir: Path, batches: list[int], rounds: int, threads: int,
               tokens: np.ndarray, console: Console) -> list[dict[str, object]]:
    rows = []
    engines = runtime_engines(export_dir, legacy_dir, threads)
    peers = {p.describe(): PeerModel(checkpoint, p, threads) for p in available_peers()}
    for batch in batches:
        take = tokens[np.resize(np.arange(len(tokens)), batch)]
        ids = np.zeros(batch, dtype=np.int32)
        calls: dict[str, Callable[[], object]] = {}
        for name, make in engines.items():
            calls[name] = full_slot_stepper(make(batch), take, ids, batch)
        # Timed as `bench --compare-torch` and the demo time the runtime against the peers (one function,
        # trm_edge/app/torch_eval.py): a drifting machine slows every engine alike.
        times = interleaved_steps(peers, take, ids, rounds, console.status, calls)
        fastest_peer = min(statistics.median(times[name]) for name in peers)
        gflop = step_gflop(read_header(checkpoint)[0], batch)
        for name, values in times.items():
            ms = 1e3 * statistics.median(values)
            ratio = 1e3 * fastest_peer / ms
            rows.append({"batch": batch, "engine": name, "step_ms": round(ms, 2),
                         "gflop_per_s": round(gflop / ms * 1e3, 1), "vs_fastest_peer": round(ratio, 3)})
            console.print(f"batch {batch:3}  {name:52} {ms:9.1f} ms  {1e3 * fastest_peer / ms:5.2f}x the fastest "
                          f"PyTorch peer, {gflop / ms * 1e3:6.1f} GFLOP/s", highlight=False)
    return rows


def whole_runs(export_dir: Path, checkpoint: Path, batches: list[int], puzzles: int, threads: int, folder: Path,
               console: Console, rounds: int = 1) -> list[dict[str, object]]:
    """Each batch: `trm-edge solve` as a whole command against each peer's official loop, in
    `rounds` interleaved rounds (a drifting machine slows every engine alike); the median of each."""
    held_out = load_puzzles(shipped_heldout(), 81).head(puzzles)
    source = folder / "puzzles.npz"
    np.savez(source, inputs=held_out.inputs)
    seconds: dict[tuple[int, str], list[float]] = {}
    solved: dict[tuple[int, str], float] = {}
    for round_ in range(rounds):
        for batch in batches:
            out = folder / f"answers_{batch}.npz"
            command = Command(["solve", export_dir, source, "-o", out, "--halt", "fixed:16", "--slots", str(batch)])
            key = (batch, "trm-edge solve --halt fixed:16 (whole command, defaults)")
            seconds.setdefault(key, []).append(command.timed())
            solved[key] = float(exact(np.load(out)["answers"], held_out.labels).mean())
            for peer in available_peers():
                answers, peer_seconds, _ = run_fixed_steps(checkpoint, held_out.inputs, held_out.puzzle_identifiers,
                                                           batch, 16, threads, peer.name)
                key = (batch, f"{peer.describe()}, official loop")
                seconds.setdefault(key, []).append(peer_seconds)
                solved[key] = float(exact(answers, held_out.labels).mean())
            latest = ", ".join(f"{name} {values[-1]:.1f} s" for (b, name), values in seconds.items() if b == batch)
            console.print(f"round {round_ + 1}/{rounds}, batch {batch}: {latest}", highlight=False)
    rows = []
    for (batch, name), values in seconds.items():
        rows.append({"batch": batch, "engine": name, "seconds": round(statistics.median(values), 2),
                     "all_seconds": [round(v, 2) for v in values], "exact": solved[batch, name]})
    for batch in batches:
        ours = next(r for r in rows if r["batch"] == batch and str(r["engine"]).startswith("trm-edge"))
        fastest = min((r for r in rows if r["batch"] == batch and r is not ours), key=lambda r: r["seconds"])
        ours["vs_fastest_peer"] = round(float(fastest["seconds"]) / float(ours["seconds"]), 3)  # type: ignore[arg-type]
        console.print(f"batch {batch:3}  whole command {ours['seconds']} s against the fastest peer "
                      f"({fastest['engine']}) {fastest['seconds']} s: {ours['vs_fastest_peer']}x", highlight=False)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="1,16,64")
    parser.add_argument("--rounds", type=int, default=PEER_ROUNDS)
    parser.add_argument("--whole", default="16,64", help="batches for part 2; empty to skip it")
    parser.add_argument("--puzzles", type=int, default=256)
    parser.add_argument("--whole-rounds", type=int, default=3, help="interleaved rounds of part 2 (medians)")
    parser.add_argument("--paper", action="store_true", help="a TRM at the paper's Sudoku size, random weights")
    parser.add_argument("--threads", type=int, default=peer_threads(None), help="[every core, as bench]")
    parser.add_argument("--json", type=Path, default=Path("step_peers.json"))
    parser.add_argument("--profile", action="store_true", help="also OpenVINO's per-op profile of the step")
    args = parser.parse_args()
    console = Console()
    torch.set_num_threads(args.threads)
    cpu = machine()
    console.print(f"CPU: {cpu}; {args.threads} threads; torch {torch.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        checkpoint = checkpoint_for(args.paper, folder)
        # Random weights are chaotic over several steps (fp32 graph and PyTorch agree on ~46% of the
        # answers after 4 looped steps, only by summation order): the paper-size export checks one step.
        steps_checked = 1 if args.paper else 4
        if args.paper:
            console.print("random weights: the export is validated on one step (every output against PyTorch); "
                          "the looped-answers check is skipped, as random weights are chaotic over several")
        with console.status("exporting (with and without the export rewrites)"):
            export_dir = export(checkpoint, folder / "export", rewrites=True, validate_steps=steps_checked)
            legacy_dir = export(checkpoint, folder / "legacy", rewrites=False, validate_steps=steps_checked)
        tokens = load_puzzles(shipped_heldout(), 81).inputs[:64]
        steps = step_table(checkpoint, export_dir, legacy_dir, [int(b) for b in args.batches.split(",")],
                           args.rounds, args.threads, tokens, console)
        profiles = []
        if args.profile:
            from step_profile import op_profile

            for precision in (p for p in native_precisions("CPU") if p != "fp16"):
                for batch in (int(b) for b in args.batches.split(",")):
                    profiles.append(op_profile(export_dir, precision, batch))
                    top = ", ".join(f"{o['op']} {100 * o['share']:.0f}% ({'/'.join(o['kernels'])})"
                                    for o in profiles[-1]["ops"][:4])
                    console.print(f"profile {precision} batch {batch}: {profiles[-1]['total_ms']} ms: {top}",
                                  highlight=False)
        whole = []
        if args.whole and not args.paper:
            whole = whole_runs(export_dir, checkpoint, [int(b) for b in args.whole.split(",")], args.puzzles,
                               args.threads, folder, console, args.whole_rounds)
    table = Table(title=f"one step, median of {args.rounds} interleaved runs ({cpu})")
    for column in ("batch", "engine", "step ms", "x fastest PyTorch peer"):
        table.add_column(column, justify="right")
    for row in steps:
        table.add_row(str(row["batch"]), str(row["engine"]), f"{row['step_ms']:.1f}", f"{row['vs_fastest_peer']:.2f}")
    console.print(table)
    write_json(args.json, {"cpu": cpu, "threads": args.threads, "torch": torch.__version__,
                           "model": "paper sudoku (random)" if args.paper else "sudoku-small",
                           "steps": steps, "whole": whole, "profiles": profiles})
    console.print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
