"""Which models each phone runtime's converter takes: every official-format fixture of the test suite
(tests/fixtures/reference: HRM and TRM, attention and MLP across positions, RoPE and learned
positions, ARC's puzzle embedding) converted, exported with each program format, and validated.

    python benchmarks/edge_models.py [--formats executorch,litert] [--max-batch 8] [--json OUT]

Per fixture and format: whether the converter lowered it, whether its programs passed validation
against PyTorch (the fp32 bars, on the puzzles the ONNX export was validated on), the seconds the conversion and
validation took, and the one-line error where it failed. Run it in the edge-dev environment (both
converters); name the CPU beside the figures (docs/mobile.md).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from trm_edge.app.doctor import cpu_summary
from trm_edge.checkpoint import save_checkpoint
from trm_edge.convert import convert_official
from trm_edge.errors import TrmEdgeError
from trm_edge.export.exporter import export_onnx
from trm_edge.export.program_export import add_programs

REFERENCE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "reference"


def fixtures() -> list[str]:
    return sorted(p.name.removesuffix(".expected.npz") for p in REFERENCE.glob("*.expected.npz"))


def describe(checkpoint: Path) -> str:
    from trm_edge.checkpoint import load_checkpoint

    c = load_checkpoint(checkpoint).config
    mixer = "MLP across positions" if c.mlp_t else "attention"
    ids = ", puzzle embedding" if c.puzzle_emb_ndim > 0 else ""
    return f"{c.arch.upper()}, {mixer}, {c.pos_encodings} positions{ids}, {c.seq_len} tokens"


def try_format(checkpoint: Path, export_dir: Path, format: str, max_batch: int, console: Console) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        record = add_programs(export_dir, checkpoint, format, max_batch, console)
    except TrmEdgeError as exc:
        lowered = "validation failed" in str(exc)
        return {"lowers": lowered, "validated": False, "seconds": time.perf_counter() - started, "error": str(exc)}
    return {"lowers": True, "validated": bool(record["validation"]["passed"]),
            "seconds": time.perf_counter() - started, "error": None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--formats", default="executorch,litert")
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
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
                       **try_format(checkpoint, export_dir, format, args.max_batch, quiet)}
                rows.append(row)
                console.print(f"  lowers {row['lowers']}, validated {row['validated']}, {row['seconds']:.0f} s"
                              + (f": {row['error']}" if row["error"] else ""))
    table = Table(title=f"which models each format takes ({cpu_summary()}, --max-batch {args.max_batch})")
    for column in ("fixture", "model", "format", "lowers", "validation", "seconds"):
        table.add_column(column)
    for r in rows:
        table.add_row(r["fixture"], r["model"], r["format"], "yes" if r["lowers"] else "no",
                      "passed" if r["validated"] else ("failed" if r["lowers"] else "-"), f"{r['seconds']:.0f}")
    console.print(table)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"cpu": cpu_summary(), "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
