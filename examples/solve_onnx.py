"""Solve Sudokus with solve.onnx and nothing but ONNX Runtime: no trm-edge, no torch.

The loop, the halting and the verification are inside the graph, so any ONNX runtime in any
language does what this does (docs/embedding.md has C++, C#, Java and Swift):

    trm-edge export shipped:sudoku-small -o sudoku_export --solve-graph
    pip install onnxruntime numpy
    python examples/solve_onnx.py sudoku_export/solve.onnx "4.165.8....7.9..43..37.49..." ...
    python examples/solve_onnx.py sudoku_export/solve.onnx --file puzzles.txt --json

A Sudoku is 81 characters, '.' or '0' for a blank. Tokens are the model's: 1 for a blank, d + 1
for digit d. Prints each answer, the steps it took and whether it verified (a valid grid that
keeps the givens, checked in the graph).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import onnxruntime


def tokens(puzzle: str) -> np.ndarray:
    cells = "".join(puzzle.split())
    if len(cells) != 81 or any(c not in ".0123456789" for c in cells):
        raise SystemExit(f"a Sudoku is 81 characters of 1-9 and '.' or '0': {puzzle[:30]!r}...")
    return np.array([1 if c in ".0" else int(c) + 1 for c in cells], dtype=np.int32)


def text(answer: np.ndarray) -> str:
    return "".join(str(t - 1) if 2 <= t <= 10 else "." for t in answer)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("graph", help="solve.onnx (from trm-edge export --solve-graph)")
    parser.add_argument("puzzles", nargs="*", help="Sudokus, 81 characters each")
    parser.add_argument("--file", help="one Sudoku per line")
    parser.add_argument("--json", action="store_true", help="print JSON, one object per puzzle")
    args = parser.parse_args(argv)
    puzzles = list(args.puzzles)
    if args.file:
        with open(args.file, encoding="utf-8") as handle:
            puzzles += [line.strip() for line in handle if line.strip() and not line.startswith("#")]
    if not puzzles:
        parser.error("give puzzles or --file")
    session = onnxruntime.InferenceSession(args.graph, providers=["CPUExecutionProvider"])
    started = time.perf_counter()
    answer, steps, verified, q_halt = session.run(None, {"tokens": np.stack([tokens(p) for p in puzzles])})
    seconds = time.perf_counter() - started
    for i, puzzle in enumerate(puzzles):
        if args.json:
            print(json.dumps({"puzzle": puzzle, "answer": text(answer[i]), "steps": int(steps[i]),
                              "verified": bool(verified[i]), "q_halt": float(q_halt[i])}))
        else:
            print(f"{text(answer[i])}  {int(steps[i])} steps, {'verified' if verified[i] else 'not verified'}")
    if not args.json:
        print(f"{len(puzzles)} puzzles in {seconds * 1e3:.1f} ms", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
