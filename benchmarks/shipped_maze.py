"""How good the shipped maze model is, and where its held-out mazes come from.

    python benchmarks/shipped_maze.py [--checkpoint CKPT] [--versions 8] [--json out.json]
    python benchmarks/shipped_maze.py --write-heldout trm_edge/models/maze-small.heldout.npz

Measured through the runtime (fp32 export, ONNX Runtime CPU) on the 1000 shipped held-out mazes:
every maze runs all its steps once, and fixed max steps, the model's own rule and the runtime's
default policy (`auto`: verified halting) are read off that recording; then the default policy
live, with and without test-time versions (a maze that does not verify is asked again reflected
or rotated), counting verified answers that are wrong (there must be none).

The held-out mazes come from the recipe's generator and seed (10x10, S-G path 16+, seed 0) at
indices from 2**31 on: the training mazes are indices 0..99,999 and the mazes evaluated during
training start at 2**30, so none is shared (checked here against the training mazes).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

HELDOUT_FIRST = 1 << 31
SIZE, MIN_PATH, SEED, TRAIN_COUNT = 10, 16, 0, 100_000  # the maze-small-cpu recipe's data


def write_heldout(path: Path, count: int = 1000) -> None:
    from trm_edge.train.maze_generator import generate_mazes

    inputs, labels, lengths = generate_mazes(count, SIZE, MIN_PATH, SEED, first=HELDOUT_FIRST)
    train, _, _ = generate_mazes(TRAIN_COUNT, SIZE, MIN_PATH, SEED)
    seen = {row.tobytes() for row in train}
    shared = sum(row.tobytes() in seen for row in inputs)
    if shared:
        raise SystemExit(f"{shared} held-out mazes are also training mazes")
    np.savez_compressed(path, inputs=inputs, labels=labels)
    print(f"wrote {path}: {count} mazes, S-G distance {lengths.min()}-{lengths.max()} (mean {lengths.mean():.1f})")


def measure(checkpoint: Path, heldout: Path, versions: int) -> dict:  # type: ignore[type-arg]
    from trm_edge.contract.held_out import exact, load_puzzles
    from trm_edge.export.exporter import export_onnx
    from trm_edge.runtime.calibrate import evaluate, record
    from trm_edge.runtime.solver import Solver
    from trm_edge.runtime.versions import VersionedRun

    with tempfile.TemporaryDirectory() as tmp:
        export_dir = export_onnx(checkpoint, Path(tmp) / "export", "fp32").directory
        solver = Solver.load(export_dir, backend="ort-cpu", max_batch=64)
        held = load_puzzles(heldout, solver.seq_len, solver.vocab_size)
        steps = solver.max_steps
        curve = evaluate(record(solver, held, steps), held.labels, steps)
        by_name = {p["policy"]: p for p in curve["policies"]}
        policy = solver.policy.name
        results = solver.solve(list(held.inputs))
        right = exact(np.stack([r.answer for r in results]), held.labels)
        verified = np.array([bool(r.verified) for r in results])
        report = {
            "mazes": len(held), "max_steps": steps, "default_policy": policy,
            "exact_default": float(right.mean()), "verified_default": float(verified.mean()),
            "verified_and_wrong": int((verified & ~right).sum()),
            "mean_steps_default": float(np.mean([r.steps for r in results])),
            "exact_own": by_name["model"]["exact"], "mean_steps_own": by_name["model"]["mean_steps"],
            "exact_fixed": curve["exact_by_step"][-1], "exact_by_step": curve["exact_by_step"],
        }
        if versions > 1:
            versioned = VersionedRun(solver, versions).solve([(t, 0) for t in held.inputs])
            v_right = exact(np.stack([r.answer for r in versioned]), held.labels)
            v_verified = np.array([r.verified for r in versioned])
            report["versions"] = {
                "versions": versions, "exact": float(v_right.mean()), "verified": float(v_verified.mean()),
                "verified_and_wrong": int((v_verified & ~v_right).sum()),
                "mean_version_steps": float(np.mean([r.version_steps for r in versioned])),
            }
    return report


def main() -> None:
    from trm_edge.shipped import shipped_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--heldout", type=Path, default=None)
    parser.add_argument("--versions", type=int, default=8)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--write-heldout", type=Path, default=None)
    args = parser.parse_args()
    if args.write_heldout:
        write_heldout(args.write_heldout)
        return
    shipped = shipped_model("maze")
    report = measure(args.checkpoint or shipped.checkpoint, args.heldout or shipped.heldout, args.versions)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text)


if __name__ == "__main__":
    main()
