"""What verified halting costs next to a step (docs/halting.md).

    python benchmarks/verify_cost.py [--rounds 20] [--slots 64]

Times the task's own check (`Codec.verify`, vectorised over the slots) on 64 answers: the shipped
Sudoku model's held-out puzzles and Maze-Hard's 30x30 test mazes (tests/fixtures), against one
step at 64 slots of a small 30x30 maze TRM (hidden 128, attention; exported fp32, ONNX Runtime
CPU). Best of --rounds each; name the CPU beside the figures.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from trm_edge.app.doctor import cpu_summary
from trm_edge.contract.held_out import load_puzzles
from trm_edge.shipped import shipped_heldout
from trm_edge.tasks import get_codec

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures"


def best_ms(run: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return 1e3 * min(times)


def maze_step_ms(rounds: int, slots: int) -> float:
    """One step of a small 30x30 maze TRM (the shipped maze model's sizes with attention over the 900
    cells, random weights: a step's cost does not depend on them), fp32 in ONNX Runtime."""
    import torch

    from trm_edge.checkpoint import save_checkpoint
    from trm_edge.config import ModelConfig
    from trm_edge.contract.export_dir import read_metadata
    from trm_edge.export.exporter import export_onnx
    from trm_edge.model import RecursiveReasoningModel
    from trm_edge.runtime.backends.registry import create_backend

    config = ModelConfig(arch="trm", seq_len=900, vocab_size=6, hidden_size=128, num_heads=2, expansion=4,
                         pos_encodings="rope", mlp_t=False, L_layers=2, H_cycles=2, L_cycles=4, task="maze")
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = save_checkpoint(RecursiveReasoningModel(config), Path(tmp) / "maze.safetensors")
        export_dir = export_onnx(checkpoint, Path(tmp) / "export", "fp32", validate=False).directory
        backend = create_backend("ort-cpu", export_dir, read_metadata(export_dir), slots, None, "fp32")
        tokens = np.load(FIXTURES / "maze_hard_test.npz")["inputs"][:slots].astype(np.int32)
        backend.set_inputs(tokens, np.zeros(slots, dtype=np.int32))
        backend.step(np.ones(slots, dtype=bool))
        return best_ms(lambda: backend.step(np.zeros(slots, dtype=bool)), max(1, rounds // 4))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20, help="timed repeats of each (the best counts)")
    parser.add_argument("--slots", type=int, default=64, help="answers verified (and the step's width)")
    args = parser.parse_args()
    slots = args.slots
    sudoku = get_codec("sudoku")
    held = load_puzzles(shipped_heldout("sudoku"), 81).head(slots)
    maze = get_codec("maze")
    mazes = np.load(FIXTURES / "maze_hard_test.npz")
    inputs, labels = mazes["inputs"][:slots].astype(np.int32), mazes["labels"][:slots].astype(np.int32)
    print(f"CPU: {cpu_summary()}")
    sudoku_ms = best_ms(lambda: sudoku.verify(held.inputs, held.labels), args.rounds)
    print(f"verify {slots} Sudoku answers: {sudoku_ms:.2f} ms")
    print(f"verify {slots} 30x30 maze answers: {best_ms(lambda: maze.verify(inputs, labels), args.rounds):.1f} ms")
    step_ms = maze_step_ms(args.rounds, slots)
    print(f"one step of a 30x30 maze TRM at {slots} slots (ONNX Runtime fp32): {step_ms:.0f} ms")


if __name__ == "__main__":
    main()
