"""The phone runtimes' programs against ONNX Runtime fp32 on the shipped Sudoku model: answers on the
held-out puzzles with every default halting, and the time of one step and of the whole solve.

    python benchmarks/edge_formats.py [--puzzles 256] [--formats executorch,litert] [--export DIR] [--json OUT]
    python benchmarks/edge_formats.py --models [--formats executorch,litert] [--batch 8] [--json OUT]

Exports shipped:sudoku-small once per format (`trm-edge export --format F`, validated), then solves
the first `--puzzles` held-out puzzles with `--backend F` and with `--backend ort-cpu` on the same
export: answers that differ, exact rates, verified answers that are wrong, mean steps, and the
medians of interleaved rounds of the whole solve (timed in-process, after the programs are loaded).
With --models: which models each converter takes. Every official-format fixture of the test suite
(tests/fixtures/reference: HRM and TRM, attention and MLP across positions, RoPE and learned
positions, ARC's puzzle embedding) converted, exported with each program format, and validated: per
fixture and format, whether the converter lowered it, whether its programs passed validation against
PyTorch (the fp32 bars, on the puzzles the ONNX export was validated on), the seconds the conversion
and validation took, and the one-line error where it failed. Run it in the edge-dev environment (both
converters; docs/mobile.md). Name the CPU beside every figure.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from harness import interleaved_seconds, machine, medians, write_json
from rich.console import Console
from rich.table import Table

from trm_edge.checkpoint import load_checkpoint, save_checkpoint
from trm_edge.contract.held_out import LabelledPuzzles, exact, load_puzzles
from trm_edge.convert import convert_official
from trm_edge.errors import TrmEdgeError
from trm_edge.export import export
from trm_edge.export.exporter import export_onnx
from trm_edge.export.formats import OnnxOptions
from trm_edge.export.program_export import add_programs
from trm_edge.runtime.solver import Solver
from trm_edge.shipped import checkpoint_path, shipped_model

ROUNDS = 3


def solve(solver: Solver, puzzles: LabelledPuzzles) -> dict[str, Any]:
    results = solver.solve(list(puzzles.inputs))
    answers = np.stack([r.answer for r in results])
    right = exact(answers, puzzles.labels)  # type: ignore[arg-type]
    verified = np.array([bool(r.verified) for r in results])
    return {"answers": answers, "exact": float(right.mean()), "verified_wrong": int((verified & ~right).sum()),
            "mean_steps": float(np.mean([r.steps for r in results]))}


def measure(format: str, export_dir: Path, puzzles: LabelledPuzzles, console: Console) -> dict[str, Any]:
    if not (export_dir / "trm_edge.json").is_file():
        export(checkpoint_path("shipped:sudoku-small"), export_dir, format,
               onnx=OnnxOptions(held_out=shipped_held_out(), calibrate=False), console=console)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        solvers = {name: Solver.load(export_dir, backend=name, precision="fp32") for name in ("ort-cpu", format)}
    runs: dict[str, dict[str, Any]] = {}

    def solving(name: str) -> Callable[[], None]:
        def call() -> None:
            runs[name] = solve(solvers[name], puzzles)
        return call

    seconds = interleaved_seconds({name: solving(name) for name in solvers}, ROUNDS)
    differ = int((runs[format]["answers"] != runs["ort-cpu"]["answers"]).any(axis=1).sum())
    return {"format": format, "puzzles": len(puzzles), "answers_differ": differ,
            **{f"{name}_{key}": value for name, run in runs.items() for key, value in run.items() if key != "answers"},
            **{f"{name}_solve_s": s for name, s in medians(seconds).items()}}


def shipped_held_out() -> LabelledPuzzles:
    return load_puzzles(shipped_model("sudoku").heldout, 81, 11)


REFERENCE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "reference"


def fixtures() -> list[str]:
    return sorted(p.name.removesuffix(".expected.npz") for p in REFERENCE.glob("*.expected.npz"))


def describe(checkpoint: Path) -> str:
    c = load_checkpoint(checkpoint).config
    mixer = "MLP across positions" if c.mlp_t else "attention"
    ids = ", puzzle embedding" if c.puzzle_emb_ndim > 0 else ""
    return f"{c.arch.upper()}, {mixer}, {c.pos_encodings} positions{ids}, {c.seq_len} tokens"


def try_format(checkpoint: Path, export_dir: Path, format: str, batch: int, console: Console) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        record = add_programs(export_dir, checkpoint, format, batch, console)
    except TrmEdgeError as exc:
        lowered = "validation failed" in str(exc)
        return {"lowers": lowered, "validated": False, "seconds": time.perf_counter() - started, "error": str(exc)}
    return {"lowers": True, "validated": bool(record["validation"]["passed"]),
            "seconds": time.perf_counter() - started, "error": None}


def formats(args: argparse.Namespace) -> None:
    console = Console()
    puzzles = shipped_held_out().head(args.puzzles)
    table = Table(title=f"phone runtimes vs ONNX Runtime fp32, shipped Sudoku, {len(puzzles)} held-out puzzles "
                        f"({machine()})")
    for column in ("format", "answers differ", "exact (format / ORT)", "verified wrong", "mean steps",
                   "solve s (format / ORT)"):
        table.add_column(column)
    rows = []
    for format in args.formats.split(","):
        row = measure(format, args.export / format, puzzles, console)
        rows.append(row)
        table.add_row(format, f"{row['answers_differ']} of {row['puzzles']}",
                      f"{row[f'{format}_exact']:.1%} / {row['ort-cpu_exact']:.1%}",
                      str(row[f"{format}_verified_wrong"]),
                      f"{row[f'{format}_mean_steps']:.2f} / {row['ort-cpu_mean_steps']:.2f}",
                      f"{row[f'{format}_solve_s']:.2f} / {row['ort-cpu_solve_s']:.2f}")
    console.print(table)
    if args.json is not None:
        write_json(args.json, {"rows": rows})



def models(args: argparse.Namespace) -> None:
    console = Console()
    quiet = Console(quiet=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="trm-edge-models-") as scratch:
        for case in fixtures():
            checkpoint = Path(scratch) / f"{case}.safetensors"
            model = convert_official(REFERENCE / f"{case}.pt", REFERENCE / f"{case}.all_config.yaml",
                                     REFERENCE / f"{case}.dataset.json")
            save_checkpoint(model, checkpoint, info=model.info)
            for format in args.formats.split(","):
                export_dir = export_onnx(checkpoint, Path(scratch) / f"{case}-{format}").directory
                console.print(f"{case}: {format} ...")
                row = {"fixture": case, "model": describe(checkpoint), "format": format,
                       **try_format(checkpoint, export_dir, format, args.batch, quiet)}
                rows.append(row)
                console.print(f"  lowers {row['lowers']}, validated {row['validated']}, {row['seconds']:.0f} s"
                              + (f": {row['error']}" if row["error"] else ""))
    table = Table(title=f"which models each format takes ({machine()}, --batch {args.batch})")
    for column in ("fixture", "model", "format", "lowers", "validation", "seconds"):
        table.add_column(column)
    for r in rows:
        table.add_row(r["fixture"], r["model"], r["format"], "yes" if r["lowers"] else "no",
                      "passed" if r["validated"] else ("failed" if r["lowers"] else "-"), f"{r['seconds']:.0f}")
    console.print(table)
    if args.json is not None:
        write_json(args.json, {"rows": rows})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--puzzles", type=int, default=256)
    parser.add_argument("--formats", default="executorch,litert")
    parser.add_argument("--export", type=Path, default=Path("benchmarks/results/edge_exports"))
    parser.add_argument("--models", action="store_true", help="which models each converter takes instead")
    parser.add_argument("--batch", type=int, default=8,
                        help="--models: the programs' batch (LiteRT's exactly, ExecuTorch's at most)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.models:
        models(args)
    else:
        formats(args)


if __name__ == "__main__":
    main()
