"""Time one supervision step: ONNX Runtime CPU (the exported step.onnx) against PyTorch eager.

    python benchmarks/step_time.py CKPT.safetensors [--batch 1 64] [--json out.json]
    python benchmarks/step_time.py --paper-sudoku-mlp          # random weights at the paper's size

Both run float32 on the same weights with the same thread count; the figure of merit is the
median wall time per step and the GFLOP/s it implies (matrix products only, counted analytically).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from trm_edge.checkpoint import load_checkpoint, save_checkpoint
from trm_edge.config import ModelConfig, swiglu_intermediate
from trm_edge.export.exporter import export_onnx
from trm_edge.model import RecursiveReasoningModel
from trm_edge.runtime.backends.onnxruntime_session import create_session
from trm_edge.train.recipe import load_recipe


def step_gflop(c: ModelConfig, batch: int) -> float:
    """Matrix-product FLOPs of one supervision step (2 per multiply-add)."""
    t, d = c.total_len, c.hidden_size
    mlp = 2 * t * d * 3 * swiglu_intermediate(d, c.expansion)
    mixer_mlp = 2 * d * t * 3 * swiglu_intermediate(t, c.expansion)
    mixer_attention = 2 * t * d * 4 * d + 2 * 2 * t * t * d  # qkv + output projections, scores + mix
    mixer = mixer_mlp if c.mlp_t else mixer_attention
    per_block = mlp + mixer
    blocks = c.H_cycles * (c.L_cycles * c.L_layers + (c.H_layers if c.arch == "hrm" else c.L_layers))
    return batch * (blocks * per_block + 2 * c.seq_len * d * c.vocab_size) / 1e9


def median_time(fn, warmup: int, repeat: int) -> float:  # type: ignore[no-untyped-def]
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", nargs="?", type=Path)
    parser.add_argument("--paper-sudoku-mlp", action="store_true", help="random TRM, hidden 512, mlp_t, H3 L6")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="trm-step-time-"))
    if args.paper_sudoku_mlp:
        torch.manual_seed(0)
        # The paper recipe's model, at the Sudoku-Extreme data sizes (one puzzle identifier).
        model_fields = load_recipe("sudoku-extreme-mlp").model
        config = ModelConfig(**model_fields, seq_len=81, vocab_size=11, forward_dtype="float32", task="sudoku")
        args.checkpoint = save_checkpoint(RecursiveReasoningModel(config), work / "paper_sudoku_mlp.safetensors")
    if args.checkpoint is None:
        parser.error("give a checkpoint or --paper-sudoku-mlp")
    model = load_checkpoint(args.checkpoint)
    c = model.config
    exported = export_onnx(args.checkpoint, work / "export", "fp32", validate=False).directory
    session = create_session(exported / "step.onnx", ["CPUExecutionProvider"], threads=args.threads)

    rows = []
    for batch in args.batch:
        tokens = torch.randint(1, c.vocab_size, (batch, c.seq_len))
        ids = torch.zeros(batch, dtype=torch.long)
        state = model.initial_state(batch)
        with torch.no_grad():
            x = model.embed(tokens, ids if c.puzzle_emb_ndim else None)

        def torch_step(state=state, x=x) -> None:  # type: ignore[no-untyped-def]
            with torch.no_grad():
                model.readout(model.recur(state, x).z_H)

        feeds = {
            "x_emb": x.numpy(),
            "z_H": state.z_H.numpy(),
            "z_L": state.z_L.numpy(),
            "reset": np.zeros(batch, dtype=bool),
        }
        repeat = 20 if batch < 16 else 5
        t_torch = median_time(torch_step, 2, repeat)
        t_ort = median_time(lambda: session.run(None, feeds), 2, repeat)  # noqa: B023
        flop = step_gflop(c, batch)
        rows.append(
            {
                "batch": batch,
                "gflop_per_step": round(flop, 2),
                "torch_ms": round(t_torch * 1e3, 2),
                "ort_ms": round(t_ort * 1e3, 2),
                "torch_gflops": round(flop / t_torch, 1),
                "ort_gflops": round(flop / t_ort, 1),
            }
        )

    table = Table(
        title=f"one step, float32, {args.threads} threads: {args.checkpoint.name} "
        f"({model.num_parameters():,} params, hidden {c.hidden_size})"
    )
    for col in ("batch", "GFLOP/step", "PyTorch eager ms", "ORT CPU ms", "PyTorch GFLOP/s", "ORT GFLOP/s"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(*(str(v) for v in r.values()))
    Console().print(table)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "checkpoint": str(args.checkpoint),
                    "threads": args.threads,
                    "onnxruntime": __import__("onnxruntime").__version__,
                    "torch": torch.__version__,
                    "rows": rows,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
