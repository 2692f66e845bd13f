"""What ARC voting costs on this machine at the paper's ARC model size.

    python benchmarks/arc_speed.py [--versions 32] [--json out.json]
    python benchmarks/arc_speed.py --gpu [--out DIR]     # on a CUDA GPU: writes gpu_arc.json to DIR ($OUT, or ./)

A TRM with attention, hidden 512, 8 heads, H 3 x (L 4 + 1), 2 layers, 900 cells + 16 puzzle-embedding
tokens (random weights: the cost of a step does not depend on them), whose export names `--versions`
versions of one ARC-AGI-1 evaluation task, validated on that task's test input (real puzzles, so
`auto` may check and time a lower precision). Every version runs the official 16 steps
(`--halt fixed:16`) through the runtime's continuous-batching loop with every runtime default
(auto: chosen by measurement here; `--backend` names one), once with `votes=8` and once with every
version (`votes=all`). From the measured version-steps per second it
computes what a full ARC-AGI-1 evaluation (419 test inputs x 1001 versions) and an ARC-AGI-2 one
(172 x 1001) cost at 16 steps per version.

With --gpu: one supervision step of the same model in PyTorch eager on a CUDA GPU (bf16 autocast
and TF32), batch 64 and 256, 10 timed steps after 3 (no ARC data needed).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
from harness import machine, paper_checkpoint, paper_config, step_gflop
from rich.console import Console
from rich.table import Table

from trm_edge.export.exporter import export_onnx
from trm_edge.export.validation_puzzles import arc_test_inputs
from trm_edge.model import RecursiveReasoningModel
from trm_edge.runtime.arc import ArcRunner
from trm_edge.runtime.solver import Solver
from trm_edge.tasks.arc_tasks import read_arc_tasks
from trm_edge.tasks.arc_versions import BLANK, ArcVersion

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "arc-agi" / "trm-kaggle-combined"
STEPS = 16
FULL_EVALUATIONS = {"ARC-AGI-1 evaluation": 419, "ARC-AGI-2 evaluation": 172}  # test inputs
OFFICIAL_VERSIONS = 1001  # the identity + 1000 augmentations


def version_names(task: str, count: int) -> list[str]:
    rng = np.random.default_rng(0)
    names = [BLANK, task]
    while len(names) < count + 1:
        name = ArcVersion(task, int(rng.integers(8)), (0, *(int(c) for c in rng.permutation(9) + 1))).name
        if name not in names:
            names.append(name)
    return names


def gpu_step(out_dir: Path) -> None:
    """One step of the paper's ARC model in PyTorch eager on a CUDA GPU (bf16 autocast, TF32)."""
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("this benchmark needs a CUDA GPU and a CUDA build of torch (none here)")
    out = {"gpu": torch.cuda.get_device_name(0), "cpu": machine(), "torch": torch.__version__}
    torch.manual_seed(0)
    model = RecursiveReasoningModel(paper_config("arc")).cuda().eval()
    torch.backends.cuda.matmul.allow_tf32 = True
    for dtype in ("bf16", "tf32"):
        for batch in (64, 256):
            tokens = torch.randint(2, 12, (batch, 900), device="cuda")
            ids = torch.randint(0, 1001, (batch,), device="cuda")
            autocast = torch.autocast("cuda", dtype=torch.bfloat16) if dtype == "bf16" else nullcontext()
            with torch.no_grad(), autocast:
                state = model.initial_state(batch, "cuda")
                for _ in range(3):
                    state = model.step(state, tokens, ids).state
                torch.cuda.synchronize()
                started, timed = time.perf_counter(), 10
                for _ in range(timed):
                    state = model.step(state, tokens, ids).state
                torch.cuda.synchronize()
                step_s = (time.perf_counter() - started) / timed
            out[f"{dtype}_b{batch}_step_ms"] = step_s * 1e3
            out[f"{dtype}_b{batch}_version_steps_per_s"] = batch / step_s
            print(dtype, batch, f"{step_s * 1e3:.1f} ms/step, {batch / step_s:.0f} version-steps/s", flush=True)
    (out_dir / "gpu_arc.json").write_text(json.dumps(out, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=32, help="Versions the export knows ('all').")
    parser.add_argument("--backend", default="auto", help="runtime backend (default: auto, as users run it)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--gpu", action="store_true", help="one PyTorch step on a CUDA GPU instead")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ".")),
                        help="--gpu: the folder for gpu_arc.json")
    args = parser.parse_args()
    if args.gpu:
        gpu_step(args.out)
        return
    console = Console()
    tasks = [t for t in read_arc_tasks(DATA / "arc-agi_evaluation_challenges.json") if len(t.test) == 1][:1]
    names = version_names(tasks[0].name, args.versions)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = paper_checkpoint("arc", Path(tmp) / "arc.safetensors", names)
        config = paper_config("arc", len(names))
        tokens, ids = arc_test_inputs(DATA / "arc-agi_evaluation_challenges.json", config, names)
        with console.status("exporting the paper-size ARC model (fp32, validated on the task's test input)"):
            exported = export_onnx(ckpt, Path(tmp) / "export", "fp32", validate_steps=1, tokens=tokens,
                                   puzzle_identifiers=ids).directory
        rows = []
        for votes in (8, None) if args.versions > 8 else (None,):  # with 8 or fewer, 'all' is the vote
            count = votes or args.versions
            solver = Solver.load(exported, backend=args.backend, slots=count, halt=f"fixed:{STEPS}")
            console.print(f"runs {solver.engine}"
                          + (f": {solver.choice.why}" if solver.choice else ""), highlight=False)
            runner = ArcRunner(solver)
            started = time.perf_counter()
            runner.solve(tasks, votes=votes)
            elapsed = time.perf_counter() - started
            version_steps = count * STEPS
            rows.append({"votes": "all" if votes is None else votes, "versions": count, "seconds": elapsed,
                         "backend": solver.engine,
                         "versions_per_s": count / elapsed, "tasks_per_s": 1 / elapsed,
                         "version_steps_per_s": version_steps / elapsed,
                         "gflop_per_s": step_gflop(config, 1) * version_steps / elapsed})
            console.print(rows[-1])
    rate = rows[-1]["version_steps_per_s"]
    costs = {name: inputs * OFFICIAL_VERSIONS * STEPS / rate for name, inputs in FULL_EVALUATIONS.items()}
    cpu = machine()
    table = Table(title=f"ARC voting at the paper's size, fixed {STEPS} steps, {rows[0]['backend']} ({cpu})")
    for column in ("votes", "versions", "seconds", "versions/s", "tasks/s", "GFLOP/s"):
        table.add_column(column, justify="right")
    for r in rows:
        table.add_row(str(r["votes"]), str(r["versions"]), f"{r['seconds']:.1f}", f"{r['versions_per_s']:.3f}",
                      f"{r['tasks_per_s']:.4f}", f"{r['gflop_per_s']:.0f}")
    console.print(table)
    console.print(f"one version-step = {step_gflop(config, 1):.0f} GFLOP; at {rate:.2f} version-steps/s:")
    for name, seconds in costs.items():
        console.print(f"  full {name} ({FULL_EVALUATIONS[name]} inputs x {OFFICIAL_VERSIONS} versions x {STEPS} "
                      f"steps): {seconds / 86400:.1f} days")
    if args.json is not None:
        args.json.write_text(json.dumps({"cpu": cpu, "rows": rows, "gflop_per_version_step": step_gflop(config, 1),
                                         "full_evaluation_seconds": costs}, indent=2))


if __name__ == "__main__":
    main()
