"""After a plain `trm-edge export CKPT` (no --data): what `auto` runs, and what each precision
this CPU runs natively answers with every other default.

    python benchmarks/plain_export_precision.py [--json plain_export_precision.json]

Models: the shipped Sudoku checkpoint (its 1000 held-out puzzles) and the Sudoku TRM trained with
the official code, converted (tests/fixtures/trained, its 300 held-out puzzles). For each: the
export's validation puzzles, auto's choice (with the figures it measured and its check), then
`Solver.load(backend="openvino", precision=P)` for every native P and ONNX Runtime fp32, default
halting: exact, mean steps, verified share, verified answers that are wrong (must be 0).
Name the CPU beside every figure.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from trm_edge.app.doctor import cpu_summary
from trm_edge.checkpoint import save_checkpoint
from trm_edge.contract.held_out import LabelledPuzzles, exact, load_puzzles
from trm_edge.convert import convert_official
from trm_edge.export.exporter import export_onnx
from trm_edge.runtime.backends.openvino import native_precisions
from trm_edge.runtime.solver import Solver
from trm_edge.shipped import shipped_checkpoint, shipped_heldout

TRAINED = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "trained"


def models(folder: Path) -> dict[str, tuple[Path, LabelledPuzzles]]:
    stem = TRAINED / "official_sudoku_mlp128"
    official = convert_official(f"{stem}.pt", f"{stem}.all_config.yaml", f"{stem}.dataset.json")
    trained = save_checkpoint(official, folder / "trained.safetensors", info=official.info)
    return {"sudoku-small (shipped)": (shipped_checkpoint(), load_puzzles(shipped_heldout(), 81)),
            "official-trained fixture": (trained, load_puzzles(TRAINED / "test_300.npz", 81))}


def measure(name: str, checkpoint: Path, held_out: LabelledPuzzles, folder: Path, console: Console) -> dict[str, Any]:
    export = export_onnx(checkpoint, folder / name.split()[0], "fp32")
    auto = Solver.load(export.directory)
    row: dict[str, Any] = {"model": name, "validation": export.metadata.validation["puzzles"],  # type: ignore[index]
                           "auto": f"{auto.backend_name} {auto.precision}", "auto_why": auto.choice.why,  # type: ignore[union-attr]
                           "auto_step_ms": auto.opened.step_ms, "checks": auto.opened.checks,  # type: ignore[union-attr]
                           "notes": auto.choice_notes, "runs": []}
    console.print(f"{name}: validated on {row['validation']}; auto runs {row['auto']} ({row['auto_why']})",
                  highlight=False)
    runs = [("ort-cpu", "fp32")] + [("openvino", p) for p in native_precisions("CPU") if p != "fp16"]
    for backend, precision in runs:
        results = Solver.load(export.directory, backend=backend, precision=precision).solve(list(held_out.inputs))
        answers = np.stack([r.answer for r in results])
        right = exact(answers, held_out.labels)  # type: ignore[arg-type]
        verified = np.array([bool(r.verified) for r in results])
        row["runs"].append({"backend": backend, "precision": precision, "exact": float(right.mean()),
                            "mean_steps": float(np.mean([r.steps for r in results])),
                            "verified": float(verified.mean()), "verified_wrong": int((verified & ~right).sum())})
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=Path("plain_export_precision.json"))
    args = parser.parse_args()
    console = Console()
    cpu = cpu_summary()
    console.print(f"CPU: {cpu}")
    with tempfile.TemporaryDirectory() as tmp:
        rows = [measure(name, ckpt, data, Path(tmp), console) for name, (ckpt, data) in models(Path(tmp)).items()]
    table = Table(title=f"plain export, default halting ({cpu})")
    for column in ("model", "backend", "precision", "exact", "mean steps", "verified", "verified & wrong"):
        table.add_column(column)
    for row in rows:
        for run in row["runs"]:
            table.add_row(row["model"], run["backend"], run["precision"], f"{run['exact']:.1%}",
                          f"{run['mean_steps']:.2f}", f"{run['verified']:.1%}", str(run["verified_wrong"]))
    console.print(table)
    args.json.write_text(json.dumps({"cpu": cpu, "models": rows}, indent=2))
    console.print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
