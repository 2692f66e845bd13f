"""One supervision step of the paper-size ARC TRM in PyTorch eager on a CUDA GPU (bf16 autocast and TF32).

    python benchmarks/gpu_arc_step.py        # on a machine with a GPU; writes gpu_arc.json to --out ($OUT, or ./)

Random weights (a step's cost does not depend on them), batch 64 and 256, 10 timed steps after 3.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from harness import machine, paper_config

from trm_edge.model import RecursiveReasoningModel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ".")), help="folder for gpu_arc.json")
    args = parser.parse_args()
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
    (args.out / "gpu_arc.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
