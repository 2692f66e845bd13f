"""What verified halting costs next to a step (docs/halting.md).

    python benchmarks/verify_cost.py [--rounds 20]

Times the task's own check (`Codec.verify`, vectorised over the slots) on 64 answers: the shipped
Sudoku model's held-out puzzles and Maze-Hard's 30x30 test mazes (tests/fixtures), against one
step at 64 slots of a 30x30 maze TRM (the reference fixture trm_att_learned_maze, exported fp32,
ONNX Runtime CPU). Best of --rounds each; name the CPU beside the figures.
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
SLOTS = 64


def best_ms(run: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return 1e3 * min(times)


def maze_step_ms(rounds: int) -> float:
    from trm_edge.checkpoint import save_checkpoint
    from trm_edge.contract.export_dir import read_metadata
    from trm_edge.convert import convert_official
    from trm_edge.export.exporter import export_onnx
    from trm_edge.runtime.backends.registry import create_backend

    case = FIXTURES / "reference" / "trm_att_learned_maze"
    model = convert_official(Path(f"{case}.pt"), Path(f"{case}.all_config.yaml"), Path(f"{case}.dataset.json"))
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = save_checkpoint(model, Path(tmp) / "maze.safetensors", info=model.info)
        export_dir = export_onnx(checkpoint, Path(tmp) / "export", "fp32").directory
        meta = read_metadata(export_dir)
        backend = create_backend("ort-cpu", export_dir, meta, SLOTS, None, "fp32")
        tokens = np.load(FIXTURES / "maze_hard_test.npz")["inputs"][:SLOTS].astype(np.int32)
        backend.set_inputs(tokens, np.zeros(SLOTS, dtype=np.int32))
        backend.step(np.ones(SLOTS, dtype=bool))
        return best_ms(lambda: backend.step(np.zeros(SLOTS, dtype=bool)), max(3, rounds // 4))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20, help="timed repeats of each (the best counts)")
    args = parser.parse_args()
    sudoku = get_codec("sudoku")
    held = load_puzzles(shipped_heldout("sudoku"), 81).head(SLOTS)
    maze = get_codec("maze")
    mazes = np.load(FIXTURES / "maze_hard_test.npz")
    inputs, labels = mazes["inputs"][:SLOTS].astype(np.int32), mazes["labels"][:SLOTS].astype(np.int32)
    print(f"CPU: {cpu_summary()}")
    sudoku_ms = best_ms(lambda: sudoku.verify(held.inputs, held.labels), args.rounds)
    print(f"verify {SLOTS} Sudoku answers: {sudoku_ms:.2f} ms")
    print(f"verify {SLOTS} 30x30 maze answers: {best_ms(lambda: maze.verify(inputs, labels), args.rounds):.1f} ms")
    print(f"one step of a 30x30 maze TRM at {SLOTS} slots (ONNX Runtime fp32): {maze_step_ms(args.rounds):.0f} ms")


if __name__ == "__main__":
    main()
