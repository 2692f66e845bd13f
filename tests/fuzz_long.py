"""The fuzz targets (tests/fuzzing.py) run long and random: new seeds round after round until the
time is up. A failing example, shrunk by Hypothesis, is saved to tests/fixtures/fuzz_findings/,
where tests/test_fuzz.py replays it as a regular test (fix the code, commit the file).

    python tests/fuzz_long.py [--minutes 20] [--examples 2000] [--targets a,b] [--json fuzz_long.json]

Prints, per target, the examples tried and the findings; exits 1 when anything was found.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
import traceback
from pathlib import Path

from rich.console import Console
from rich.table import Table

from trm_edge.app.doctor import cpu_summary

from conftest import reference_files  # run as a script, this folder is first on sys.path
from fuzzing import FINDINGS, TARGETS, FuzzContext, Ledger, run_target, save_finding


def maze_export(folder: Path) -> Path:
    """The reference maze case converted and exported fp32, as the tests' fixture does."""
    from trm_edge.checkpoint import save_checkpoint
    from trm_edge.convert import convert_official
    from trm_edge.export.exporter import export_onnx

    model = convert_official(*reference_files("trm_att_learned_maze"))
    checkpoint = save_checkpoint(model, folder / "maze.safetensors", info=model.info)
    return export_onnx(checkpoint, folder / "maze", "fp32").directory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--examples", type=int, default=2000, help="examples per target per round")
    parser.add_argument("--targets", default="", help="comma-separated target names [all]")
    parser.add_argument("--seed", type=int, default=None, help="first round's seed [random]")
    parser.add_argument("--findings", type=Path, default=FINDINGS, help="where failing examples are saved")
    parser.add_argument("--json", type=Path, default=Path("fuzz_long.json"))
    args = parser.parse_args()
    names = [n for n in args.targets.split(",") if n] or sorted(TARGETS)
    unknown = sorted(set(names) - set(TARGETS))
    if unknown:
        parser.error(f"unknown target(s) {', '.join(unknown)}; targets: {', '.join(sorted(TARGETS))}")
    console = Console()
    rng = random.Random(args.seed)
    ledger = Ledger()
    findings: list[dict[str, str]] = []
    rounds = 0
    with tempfile.TemporaryDirectory() as tmp:
        needs_export = any(TARGETS[n].needs_export for n in names)
        with console.status("exporting the reference maze model"):
            context = FuzzContext(maze_export(Path(tmp)) if needs_export else None)
        started = time.monotonic()
        deadline = started + 60 * args.minutes
        while time.monotonic() < deadline:
            rounds += 1
            for name in names:
                if time.monotonic() >= deadline:
                    break
                round_seed = rng.getrandbits(64)
                before = time.monotonic()
                try:
                    run_target(name, context, "long", rng_seed=round_seed, ledger=ledger, max_examples=args.examples)
                except Exception as exc:  # a finding: Hypothesis re-ran the smallest failing example last
                    path = save_finding(name, ledger.last[name], exc, args.findings)
                    findings.append({"target": name, "seed": str(round_seed), "file": str(path),
                                     "error": f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:200]}"})
                    console.print(f"[red]finding[/] in {name} (seed {round_seed}): saved {path}")
                    console.print("".join(traceback.format_exception_only(type(exc), exc)).strip()[:600])
                console.print(f"  {name}: {ledger.counts.get(name, 0):,} examples so far "
                              f"({time.monotonic() - before:.0f} s this round)", highlight=False)
            elapsed = (time.monotonic() - started) / 60
            console.print(f"round {rounds}: {sum(ledger.counts.values()):,} examples in {elapsed:.1f} min, "
                          f"{len(findings)} finding(s)")
    minutes = (time.monotonic() - started) / 60
    table = Table(title=f"fuzz_long: {minutes:.1f} min, {rounds} rounds")
    for column in ("target", "examples", "findings"):
        table.add_column(column, justify="left" if column == "target" else "right")
    for name in names:
        table.add_row(name, f"{ledger.counts.get(name, 0):,}", str(sum(f["target"] == name for f in findings)))
    console.print(table)
    args.json.write_text(json.dumps({
        "minutes": round(minutes, 2), "rounds": rounds, "examples": ledger.counts, "findings": findings,
        "cpu": cpu_summary(), "cores": os.cpu_count(),
    }, indent=2))
    console.print(f"wrote {args.json}")
    sys.exit(1 if findings else 0)


if __name__ == "__main__":
    main()
